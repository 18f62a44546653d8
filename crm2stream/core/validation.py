"""Bytes in, an event or a coded rejection out.

Validation runs before anything else looks at a line, so an invalid line is rejected
whatever its event_id. First the JSON layer: a line is one I-JSON text (RFC 7493: no
repeated key in any object, no lone surrogate, every number within a double's range, at
most 64 levels of nesting), judged by the compiled checker that the fast decoder uses too
(``native/src/ijson.rs``), so the two paths cannot differ on it. Then numbers are parsed as
Decimal (jiter), never through float, so purchase amounts stay exact, and pydantic checks
the object against the v1 models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import jiter
from pydantic import TypeAdapter, ValidationError

from crm2stream._native import json_fault
from crm2stream.core.events import EVENT_MODELS, AnyEvent, Event, PurchaseEvent, format_micros

#: Rejection reason codes, most fundamental first: when a line has several faults the
#: first code of this tuple that applies is the one reported.
REASONS: Final = (
    "encoding",
    "too_large",
    "malformed_json",
    "not_an_object",
    "unknown_type",
    "missing_field",
    "unknown_field",
    "invalid_value",
    "currency_mismatch",
    "future_timestamp",
)
#: Lines above this size are rejected unread.
MAX_LINE_BYTES: Final = 1 << 20

_ADAPTER: Final[TypeAdapter[AnyEvent]] = TypeAdapter(Event)

_CODE_OF_ERROR_TYPE: Final = {
    "missing": "missing_field",
    "union_tag_not_found": "missing_field",
    "extra_forbidden": "unknown_field",
    "union_tag_invalid": "unknown_type",
    "string_too_long": "too_large",
    "too_long": "too_large",
    "too_large": "too_large",
    "dict_type": "not_an_object",
    "model_type": "not_an_object",
    "model_attributes_type": "not_an_object",
}
_PRECEDENCE: Final = {code: rank for rank, code in enumerate(REASONS)}


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a line was refused: a stable code for machines, a sentence for people."""

    reason: str
    error: str


def _describe(errors: list[Any]) -> Rejection:
    best: tuple[int, str] | None = None
    sentences = []
    for err in errors:
        code = _CODE_OF_ERROR_TYPE.get(err["type"], "invalid_value")
        loc = err["loc"]
        # The discriminated union puts the type tag first in loc; drop it.
        if loc and loc[0] in EVENT_MODELS:
            loc = loc[1:]
        if err["type"] in ("union_tag_not_found", "union_tag_invalid"):
            field = "type"
        else:
            field = ".".join(str(part) for part in loc) or "(event)"
        sentences.append(f"field '{field}': {err['msg']}")
        rank = _PRECEDENCE[code]
        if best is None or rank < best[0]:
            best = (rank, code)
    assert best is not None
    return Rejection(best[1], "; ".join(sentences))


def decode(line: bytes, currency: str) -> AnyEvent | Rejection:
    """Validate one NDJSON line against the v1 contract and the installation's currency."""
    if len(line) > MAX_LINE_BYTES:
        return Rejection("too_large", f"line is {len(line)} bytes, limit {MAX_LINE_BYTES}")
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("encoding", f"not UTF-8: {exc.reason} at byte {exc.start}")
    fault = json_fault(line)
    if fault is not None and fault[0] != "invalid_value":
        return Rejection(*fault)
    # A number out of range: a more fundamental fault of the object still comes first.
    out_of_range = None if fault is None else Rejection(*fault)
    try:
        obj = jiter.from_json(line, float_mode="decimal")
    except ValueError as exc:
        return out_of_range or Rejection("malformed_json", f"not JSON: {exc}")
    if not isinstance(obj, dict):
        return Rejection("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    try:
        event = _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        rejection = _describe(exc.errors(include_url=False))
        later = _PRECEDENCE[rejection.reason] >= _PRECEDENCE["invalid_value"]
        if out_of_range is not None and later:
            return Rejection("invalid_value", f"{out_of_range.error}; {rejection.error}")
        return rejection
    if out_of_range is not None:
        return out_of_range
    if isinstance(event, PurchaseEvent) and event.currency.upper() != currency:
        return Rejection(
            "currency_mismatch",
            f"field 'currency': {event.currency!r} is not this installation's {currency!r}",
        )
    return event


def too_far_ahead(occurred_at: int, arrival: int, tolerance_seconds: int) -> Rejection | None:
    """An event dated more than the tolerance after its line arrived (microseconds since
    the epoch, as the log recorded the arrival) is rejected: a wrong clock in the field
    must not push the event-time clock that windows, decay and the default as-of follow.
    Judged against the recorded arrival, a replay gives the same verdict years later."""
    if occurred_at <= arrival + tolerance_seconds * 1_000_000:
        return None
    return Rejection(
        "future_timestamp",
        f"field 'occurred_at': {format_micros(occurred_at)} is more than "
        f"{tolerance_seconds} s after the line arrived ({format_micros(arrival)})",
    )


def declared_type(line: bytes) -> str:
    """The declared type of a line, for metric labels: ``unknown`` when it has none."""
    try:
        body = jiter.from_json(line)
    except ValueError:
        return "unknown"
    kind = body.get("type") if isinstance(body, dict) else None
    return kind if isinstance(kind, str) and kind in EVENT_MODELS else "unknown"
