"""Every class of bad input gets its reason code and a sentence naming the field."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from crm2stream.core.events import PurchaseEvent
from crm2stream.core.validation import MAX_LINE_BYTES, Rejection, decode
from tests.events import comment, identify, line, purchase, share

MANY = [f"qq:{i}" for i in range(1001)]
GOOD = purchase("e1", "2026-11-01T10:00:00Z", "phone:138", "12.50")


def rejected(raw: bytes, currency: str = "CNY") -> Rejection:
    result = decode(raw, currency)
    assert isinstance(result, Rejection), result
    return result


def with_(**changes: object) -> bytes:
    body = dict(GOOD)
    for name, value in changes.items():
        if value is None:
            body.pop(name)
        else:
            body[name] = value
    return line(body)


def test_good_purchase_keeps_amount_exact() -> None:
    event = decode(line(GOOD), "CNY")
    assert isinstance(event, PurchaseEvent)
    assert event.amount == Decimal("12.50")
    assert event.amount_units == 1_250_000_000


def test_json_number_amount_is_not_rounded_through_float() -> None:
    raw = with_(amount=0).replace(b'"amount":0', b'"amount":12345678901234567.12345678')
    event = decode(raw, "CNY")
    assert isinstance(event, PurchaseEvent)
    assert event.amount == Decimal("12345678901234567.12345678")


@pytest.mark.parametrize(
    ("raw", "reason", "mentions"),
    [
        (b"{not json", "malformed_json", "JSON"),
        (b'{"event_id": "x",}', "malformed_json", "JSON"),
        (b"[1, 2]", "not_an_object", "object"),
        (b'"text"', "not_an_object", "object"),
        (b"\xff\xfe{}", "encoding", "UTF-8"),
        (b'{"event_id": "caf\xe9"}', "encoding", "UTF-8"),
    ],
)
def test_undecodable_lines(raw: bytes, reason: str, mentions: str) -> None:
    rejection = rejected(raw)
    assert rejection.reason == reason
    assert mentions in rejection.error


def test_unknown_type() -> None:
    rejection = rejected(with_(type="like"))
    assert rejection.reason == "unknown_type"
    assert "'type'" in rejection.error


@pytest.mark.parametrize("field", ["event_id", "occurred_at", "actor", "amount", "type"])
def test_missing_field(field: str) -> None:
    rejection = rejected(with_(**{field: None}))
    assert rejection.reason == "missing_field"
    assert f"'{field}'" in rejection.error


def test_unknown_field_is_an_error_not_ignored() -> None:
    rejection = rejected(with_(amonut="3"))
    assert rejection.reason == "unknown_field"
    assert "'amonut'" in rejection.error


def test_unknown_field_inside_an_identifier() -> None:
    rejection = rejected(with_(actor={"kind": "phone", "value": "1", "vale": "2"}))
    assert rejection.reason == "unknown_field"
    assert "actor" in rejection.error


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-01",
        "2026-11-01T10:00:00",  # no offset
        "2026-13-01T10:00:00Z",
        "2026-11-31T10:00:00Z",
        "yesterday",
        "1969-12-31T23:59:59Z",
        1762000000,
    ],
)
def test_bad_timestamp(stamp: object) -> None:
    rejection = rejected(with_(occurred_at=stamp))
    assert rejection.reason == "invalid_value"
    assert "'occurred_at'" in rejection.error


def test_timestamps_with_offsets_are_kept_as_utc() -> None:
    event = decode(with_(occurred_at="2026-11-01T08:00:00.123456789+08:00"), "CNY")
    assert isinstance(event, PurchaseEvent)
    assert event.occurred_at.isoformat() == "2026-11-01T00:00:00.123456+00:00"


@pytest.mark.parametrize("amount", ["-1", -0.01, "abc", "NaN", "Infinity", True, "1.123456789"])
def test_bad_amount(amount: object) -> None:
    rejection = rejected(with_(amount=amount))
    assert rejection.reason == "invalid_value"
    assert "'amount'" in rejection.error


def test_wrong_currency() -> None:
    rejection = rejected(with_(currency="USD"))
    assert rejection.reason == "currency_mismatch"
    assert "USD" in rejection.error
    assert isinstance(decode(with_(currency="cny"), "CNY"), PurchaseEvent)


def test_currency_is_checked_after_the_rest() -> None:
    assert rejected(with_(currency="USD", amount="-1")).reason == "invalid_value"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (dict(GOOD, event_id="x" * 129), "event_id"),
        (comment("c1", "2026-11-01T10:00:00Z", "qq:1", text="x" * 10_001), "text"),
        (dict(GOOD, actor={"kind": "qq", "value": "9" * 257}), "actor"),
        (
            share(
                "s1", "2026-11-01T10:00:00Z", "qq:1", recipients=[f"qq:{i}" for i in range(1001)]
            ),
            "recipients",
        ),
        (dict(GOOD, amount="1e18"), "amount"),
    ],
)
def test_oversized_field(body: dict[str, object], field: str) -> None:
    rejection = rejected(line(body))
    assert rejection.reason == "too_large"
    assert f"'{field}'" in rejection.error


def test_oversized_line() -> None:
    body = dict(GOOD, properties={"blob": "x" * MAX_LINE_BYTES})
    assert rejected(line(body)).reason == "too_large"


@pytest.mark.parametrize(
    "actor",
    [
        {"kind": "Phone", "value": "1"},
        {"kind": "phone", "value": "  "},
        {"kind": "phone", "value": 138},
        {"kind": "wechat", "value": "a\x00b"},
        "phone:138",
    ],
)
def test_bad_identifier(actor: object) -> None:
    rejection = rejected(with_(actor=actor))
    assert rejection.reason == "invalid_value"
    assert "'actor'" in rejection.error


def test_identify_cannot_link_an_identifier_to_itself() -> None:
    raw = line(identify("i1", "2026-11-01T10:00:00Z", "phone:1", "phone:1"))
    assert rejected(raw).reason == "invalid_value"


def test_unsupported_schema_version() -> None:
    assert rejected(with_(schema_version=2)).reason == "invalid_value"


def test_several_faults_report_the_most_fundamental() -> None:
    body = dict(GOOD, extra=1)
    body.pop("amount")
    rejection = rejected(orjson.dumps(body))
    assert rejection.reason == "missing_field"
    assert "'amount'" in rejection.error and "'extra'" in rejection.error


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[1e400]", "not_an_object"),
        (line(GOOD)[:-1] + b',"colour":1e400}', "unknown_field"),
        (line(GOOD)[:-1] + b',"properties":{"x":1e400}}', "invalid_value"),
        (line(GOOD)[:-1] + b',"properties":{"x":1e400,}}', "malformed_json"),
        (line(GOOD)[:-1] + b',"properties":{"x":' + b"[" * 70 + b"}", "too_large"),
    ],
)
def test_a_number_out_of_range_gives_way_to_a_more_fundamental_fault(
    raw: bytes, reason: str
) -> None:
    assert rejected(raw).reason == reason
