"""The event wire format, version 1: the single definition of what crm2stream accepts.

Every other representation (the JSON Schemas in ``schemas/``, the docs) is generated from
these frozen pydantic models, so the contract cannot drift. Anything not declared here is
an error: a typo in a field name must never pass silently into customer data.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from sys import intern
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictStr,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

SCHEMA_VERSION = 1

#: Purchase amounts are kept as integers in units of 10**-8 of the currency: exact and
#: order-independent to sum, unlike floats.
#: microseconds in a UTC day: event time is kept in microseconds since the epoch
DAY_US = 86_400_000_000
AMOUNT_DECIMALS = 8
AMOUNT_SCALE = 10**AMOUNT_DECIMALS
MAX_AMOUNT = Decimal(10) ** 18
MAX_RECIPIENTS = 1000
MAX_TEXT = 10_000
MAX_IDENTIFIER_VALUE = 256
MIN_YEAR = 1970

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PHONE_NOISE = str.maketrans("", "", " -.()")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _parse_timestamp(value: Any) -> datetime:
    """RFC 3339 with an explicit offset, normalised to UTC (nanoseconds are truncated)."""
    if isinstance(value, str):
        match = _RFC3339.match(value)
        if match is None:
            raise PydanticCustomError(
                "invalid_value", "not an RFC 3339 timestamp with offset (e.g. 2026-11-01T10:00:00Z)"
            )
        fraction = match.group(1)
        if fraction and len(fraction) > 7:  # Python keeps microseconds: cut nanoseconds.
            value = value.replace(fraction, fraction[:7], 1)
        try:
            moment = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
            moment = moment.astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise PydanticCustomError(
                "invalid_value", "impossible timestamp: {e}", {"e": str(exc)}
            ) from None
    elif isinstance(value, datetime) and value.tzinfo is not None:
        moment = value.astimezone(UTC)
    else:
        raise PydanticCustomError("invalid_value", "timestamp must be an RFC 3339 string")
    if moment.year < MIN_YEAR:
        raise PydanticCustomError("invalid_value", "timestamps before 1970 are not supported")
    return moment


def timestamp_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch: the integer the core orders events by."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


#: An amount written as a string: a JSON number's digits, ASCII only, without sign or
#: white space (``Decimal`` alone would also take "١٢", "１２" or "1_0.0_1").
_AMOUNT_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)


def _parse_amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise PydanticCustomError("invalid_value", "amount must be a JSON number or string")
    if isinstance(value, str) and _AMOUNT_TEXT.fullmatch(value) is None:
        raise PydanticCustomError(
            "invalid_value", "amount must be written in ASCII digits, as 129.90 or 1e3"
        )
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise PydanticCustomError("invalid_value", "amount is not a decimal number") from None
    if not amount.is_finite():
        raise PydanticCustomError("invalid_value", "amount must be finite")
    if amount < 0:
        raise PydanticCustomError("invalid_value", "amount must be >= 0")
    if amount >= MAX_AMOUNT:
        raise PydanticCustomError("too_large", "amount must be below 10^18")
    exponent = amount.as_tuple().exponent
    if (
        isinstance(exponent, int)
        and exponent < -AMOUNT_DECIMALS
        and amount != amount.quantize(Decimal(1).scaleb(-AMOUNT_DECIMALS))
    ):
        raise PydanticCustomError("invalid_value", "amount has more than 8 decimal places")
    return amount


_TOKEN = re.compile(r"^([a-z0-9][a-z0-9_.:-]{0,63}|\*)$")


def _token(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("invalid_value", "must be a string")
    token = value.strip().lower()
    if not _TOKEN.match(token):
        raise PydanticCustomError(
            "invalid_value",
            "'{token}' is not a token ([a-z0-9][a-z0-9_.:-]{0,63} or *)",
            {"token": value},
        )
    return token


Timestamp = Annotated[datetime, BeforeValidator(_parse_timestamp)]
Amount = Annotated[Decimal, BeforeValidator(_parse_amount)]
#: A lower-cased token: channels, purposes, sources.
Token = Annotated[
    str,
    PlainValidator(_token),
    WithJsonSchema({"type": "string", "pattern": "^([a-z0-9][a-z0-9_.:-]{0,63}|\\*)$"}),
]
Text = Annotated[StrictStr, StringConstraints(min_length=1, max_length=128)]
EventId = Annotated[StrictStr, StringConstraints(min_length=1, max_length=128)]


_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_VALID_KINDS: set[str] = set()


def _valid_kind(kind: object) -> bool:
    """Check a kind once; remember the few distinct kinds an installation sees."""
    if not isinstance(kind, str) or not _KIND.match(kind):
        return False
    if len(_VALID_KINDS) < 4096:
        _VALID_KINDS.add(kind)
    return True


class Identifier(NamedTuple):
    """One handle on an individual: a member card, a phone, a WeChat id, an email...

    Values are normalised so that the same handle written two ways is one node; ``key`` is
    the flat ``kind:value`` form. A named tuple rather than a nested model: events name
    several of these, and building them in one C call keeps ingest fast. Make them with
    ``make_identifier`` (or from the wire), which normalises and checks.
    """

    kind: str
    value: str
    key: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "value": self.value}


_new_identifier = tuple.__new__


def make_identifier(kind: Any, value: Any) -> Identifier:
    """Validate and normalise one identifier."""
    if kind not in _VALID_KINDS and not _valid_kind(kind):
        raise PydanticCustomError(
            "invalid_value",
            "identifier kind '{kind}' must match [a-z][a-z0-9_]{0,31}",
            {"kind": str(kind)},
        )
    if not isinstance(value, str):
        raise PydanticCustomError("invalid_value", "identifier value must be a string")
    if kind == "phone":
        value = value.translate(_PHONE_NOISE)
    elif kind == "email":
        value = value.strip().lower()
    else:
        value = value.strip()
    if not value:
        raise PydanticCustomError("invalid_value", "identifier value is empty")
    if len(value) > MAX_IDENTIFIER_VALUE:
        raise PydanticCustomError("too_large", "identifier value is over 256 characters")
    if not value.isprintable() and _CONTROL.search(value):
        raise PydanticCustomError("invalid_value", "identifier value has control characters")
    # One string per distinct identifier, however many events and ties name it.
    return _new_identifier(Identifier, (kind, value, intern(f"{kind}:{value}")))


def _identifier(value: Any) -> Identifier:
    if type(value) is dict and len(value) == 2:
        try:
            return make_identifier(value["kind"], value["value"])
        except KeyError:
            pass
    if isinstance(value, Identifier):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("invalid_value", "identifier must be an object {kind, value}")
    missing = [name for name in ("kind", "value") if name not in value]
    if missing:
        raise PydanticCustomError(
            "missing", "identifier needs {missing}", {"missing": " and ".join(missing)}
        )
    extra = sorted(set(value) - {"kind", "value"})
    raise PydanticCustomError(
        "extra_forbidden", "identifier has unknown field(s) {extra}", {"extra": ", ".join(extra)}
    )


_IDENTIFIER_SCHEMA = {
    "type": "object",
    "title": "Identifier",
    "description": "kind:value handle on an individual; value normalised (phone drops "
    "spaces, dashes, dots and parentheses; email trimmed and lower-cased; others trimmed), "
    "then 1-256 characters without control characters.",
    "properties": {
        "kind": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"},
        "value": {"type": "string", "minLength": 1},
    },
    "required": ["kind", "value"],
    "additionalProperties": False,
}
IdentifierField = Annotated[
    Identifier,
    PlainValidator(_identifier),
    PlainSerializer(Identifier.as_dict),
    WithJsonSchema(_IDENTIFIER_SCHEMA),
]


def parse_identifier_key(text: str) -> Identifier:
    """Parse and normalise a flat ``kind:value`` identifier (command-line input)."""
    kind, sep, value = text.partition(":")
    if not sep:
        raise ValueError(f"identifier {text!r} is not of the form kind:value")
    try:
        return make_identifier(kind, value)
    except PydanticCustomError as exc:
        raise ValueError(exc.message()) from None


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: EventId
    occurred_at: Timestamp
    actor: IdentifierField
    source: Token | None = None
    schema_version: Literal[1] = 1
    properties: dict[str, Any] | None = None

    def identifiers(self) -> list[IdentifierField]:
        """Every identifier the event names, in any role, actor first."""
        return [self.actor]


class IdentifyEvent(_Envelope):
    """The actor and ``link`` are the same individual."""

    type: Literal["identify"]
    link: IdentifierField

    @field_validator("link")
    @classmethod
    def _not_self(cls, link: Identifier, info: Any) -> Identifier:
        if info.data.get("actor") == link:
            raise PydanticCustomError("invalid_value", "link names the actor itself")
        return link

    def identifiers(self) -> list[IdentifierField]:
        return [self.actor, self.link]


class UnlinkEvent(IdentifyEvent):
    """The actor and ``link`` are no longer the same individual (e.g. a reassigned phone)."""

    type: Literal["unlink"]  # type: ignore[assignment]


class ShareEvent(_Envelope):
    type: Literal["share"]
    content_id: Text
    content_owner: IdentifierField | None = None
    parent_share_id: EventId | None = None
    recipients: Annotated[list[IdentifierField], Field(max_length=MAX_RECIPIENTS)] | None = None

    @field_validator("parent_share_id")
    @classmethod
    def _not_own_parent(cls, parent: str | None, info: Any) -> str | None:
        if parent is not None and parent == info.data.get("event_id"):
            raise PydanticCustomError("invalid_value", "a share cannot re-share itself")
        return parent

    def identifiers(self) -> list[IdentifierField]:
        named = [self.actor]
        if self.content_owner is not None:
            named.append(self.content_owner)
        if self.recipients:
            named.extend(self.recipients)
        return named


class CommentEvent(_Envelope):
    type: Literal["comment"]
    content_id: Text
    content_owner: IdentifierField | None = None
    reply_to: IdentifierField | None = None
    text: Annotated[StrictStr, StringConstraints(max_length=MAX_TEXT)] | None = None

    def identifiers(self) -> list[IdentifierField]:
        named = [self.actor]
        if self.content_owner is not None:
            named.append(self.content_owner)
        if self.reply_to is not None:
            named.append(self.reply_to)
        return named


class PurchaseEvent(_Envelope):
    type: Literal["purchase"]
    order_id: Text
    amount: Amount
    currency: Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z]{3}$", to_upper=True)]
    referral_share_id: EventId | None = None

    @property
    def amount_units(self) -> int:
        """The amount in 10**-8 units: an exact integer."""
        return int(self.amount.scaleb(AMOUNT_DECIMALS))


class PermissionEvent(_Envelope):
    type: Literal["permission"]
    grantee: Text
    purpose: Token
    channel: Token = "*"
    granted: StrictBool
    expires_at: Timestamp | None = None


Event = Annotated[
    IdentifyEvent | UnlinkEvent | ShareEvent | CommentEvent | PurchaseEvent | PermissionEvent,
    Field(discriminator="type"),
]
EVENT_MODELS: dict[str, type[_Envelope]] = {
    "identify": IdentifyEvent,
    "unlink": UnlinkEvent,
    "share": ShareEvent,
    "comment": CommentEvent,
    "purchase": PurchaseEvent,
    "permission": PermissionEvent,
}
AnyEvent = IdentifyEvent | UnlinkEvent | ShareEvent | CommentEvent | PurchaseEvent | PermissionEvent


def format_micros(ts: int) -> str:
    """Microseconds since the epoch as an RFC 3339 UTC timestamp."""
    moment = _EPOCH + timedelta(microseconds=ts)
    return (
        moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if moment.microsecond
        else (moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
    )


def format_day(day: int) -> str:
    """Days since the epoch as an ISO date."""
    return (_EPOCH + timedelta(days=day)).date().isoformat()


def parse_day(text: str) -> int:
    """An ISO date, or any RFC 3339 timestamp meaning its UTC day, as days since the epoch."""
    try:
        moment = datetime.fromisoformat(text) if "T" in text.upper() else None
    except ValueError:
        moment = None
    if moment is not None:
        return timestamp_micros(_parse_timestamp(text)) // DAY_US
    day = date.fromisoformat(text)
    return (day - _EPOCH.date()).days
