"""The compiled core's fast decoder against the reference decoder (the pydantic models).

The fast path may decline any line, but what it accepts it must accept exactly as the
models do, with the same normalised values: otherwise the two cores would disagree.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm2stream import _native
from crm2stream.core.flat import decode_flat
from crm2stream.synth import BAD_LINES, Campaign, lines
from tests.conformance import BAD_INPUT
from tests.events import comment, purchase
from tests.strategies import event_sets

CURRENCY = "CNY"
CAMPAIGN = list(lines(Campaign(identifiers=200, events=2000, days=30, seed=5)))

#: Values that sit on the edges of the contract: padding, case, escapes, exponents,
#: wrong types, limits, non-ASCII, nulls.
TRICKY: list[Any] = [
    None,
    "",
    " ",
    "x",
    " Padded ",
    "UPPER",
    "a\\nb",
    "line\nbreak",
    "\u00e9t\u00e9",
    "\uff21\uff22",
    "a" * 128,
    "a" * 129,
    0,
    1,
    -1,
    1.5,
    "1e3",
    1e3,
    "12.34",
    "12.123456789",
    "12.120000000",
    "0012",
    True,
    [],
    {},
    {"kind": "phone", "value": " 138-0000 (1) "},
    {"kind": "email", "value": " A@B.CN "},
    {"kind": "Phone", "value": "1"},
    {"kind": "qq", "value": "q", "extra": 1},
    {"kind": "qq"},
    "2026-11-01T10:00:00Z",
    "2026-11-01t10:00:00.1234567891+08:00",
    "2026-02-29T10:00:00Z",
    "1969-12-31T23:00:00-02:00",
    "2026-11-01 10:00:00z",
    "2026-11-01T24:00:00Z",
    "*",
    "marketing",
    " SMS ",
    "cny",
    "usd",
]
FIELDS = [
    "event_id",
    "type",
    "occurred_at",
    "actor",
    "source",
    "schema_version",
    "properties",
    "link",
    "content_id",
    "content_owner",
    "parent_share_id",
    "recipients",
    "reply_to",
    "text",
    "order_id",
    "amount",
    "currency",
    "referral_share_id",
    "grantee",
    "purpose",
    "channel",
    "granted",
    "expires_at",
    "colour",
]


def agree(line: bytes) -> bool:
    """Whether the fast path declined the line or decoded it as the reference does."""
    fast = _native.fast_decode(line, CURRENCY)
    if fast is None:
        return False
    assert fast == decode_flat(line, CURRENCY), line
    return True


def test_the_fast_path_takes_every_line_of_a_campaign() -> None:
    assert all(agree(line) for line in CAMPAIGN)


def test_the_fast_path_declines_every_bad_line() -> None:
    for line in [*BAD_INPUT.values(), *BAD_LINES]:
        assert _native.fast_decode(line, CURRENCY) is None, line


@settings(max_examples=300, deadline=None)
@given(
    event_sets(max_size=5),
    st.lists(st.tuples(st.sampled_from(FIELDS), st.sampled_from(TRICKY)), max_size=3),
    st.lists(st.sampled_from(FIELDS), max_size=2),
)
def test_what_the_fast_path_accepts_the_models_accept_alike(
    events: list[dict[str, Any]],
    changes: list[tuple[str, Any]],
    removals: list[str],
) -> None:
    for body in events:
        for field, value in changes:
            body[field] = value
        for field in removals:
            body.pop(field, None)
        agree(orjson.dumps(body))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


#: Raw JSON text on the edges of the JSON layer of the contract (not expressible as a
#: Python value to dump): non-finite and long numbers, nesting, surrogates, repeated keys,
#: amounts in other scripts' digits.
RAW: list[str] = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e-400",
    "9" * 5000,
    "9" * 300,
    "1.7976931348623157e308",
    "1.7976931348623159e308",
    "1e99999999999999999999",
    "1e-99999999999999999999",
    "0e99999999999999999999",
    "5e-324",
    "2e-324",
    nested(62),
    nested(63),
    nested(64),
    nested(200),
    '"\\ud800"',
    '"x\\udc00"',
    '"\\ud83d\\ude00"',
    '"\\u0000"',
    '{"a":1,"a":2}',
    '{"a":1,"\\u0061":2}',
    '{"a":{"b":1,"b":1}}',
    '"\u0661\u0662"',
    '"\uff11\uff12"',
    '"\u0e51\u0e52"',
    '"1_0.0_1"',
    '"12"',
    '" 12"',
    '"+12"',
    '"1e2"',
    "1e2",
    "12.5",
    '"12.5"',
    "{}",
    "[]",
]


def with_raw(body: dict[str, Any], field: str, raw: str, wrap: bool, repeat: bool) -> bytes:
    """The event's JSON text with ``"field": raw`` added as text (``wrap``: as the value of
    a key inside an object); ``repeat`` keeps the field's own value too, so the key is
    repeated."""
    if not repeat:
        body = {k: v for k, v in body.items() if k != field}
    value = f'{{"x":{raw}}}' if wrap else raw
    return orjson.dumps(body)[:-1] + f',"{field}":{value}}}'.encode()


@settings(max_examples=600, deadline=None)
@given(
    event_sets(max_size=3),
    st.sampled_from(FIELDS),
    st.sampled_from(RAW),
    st.booleans(),
    st.booleans(),
)
def test_raw_json_edges_are_judged_alike_by_both_paths(
    events: list[dict[str, Any]], field: str, raw: str, wrap: bool, repeat: bool
) -> None:
    for body in events:
        line = with_raw(body, field, raw, wrap, repeat)
        agree(line)
        if repeat and field in body:
            assert len(decode_flat(line, CURRENCY)) == 2, "a repeated key is rejected"


GOOD_COMMENT = comment("c1", "2026-11-01T00:00:00Z", "qq:1")
GOOD_PURCHASE = purchase("p1", "2026-11-01T00:00:00Z", "qq:1", "1.00")


@pytest.mark.parametrize(
    ("body", "field", "raw", "reason"),
    [
        (GOOD_COMMENT, "properties", '{"x":' + nested(200) + "}", "too_large"),
        (GOOD_COMMENT, "properties", '{"x":' + nested(63) + "}", "too_large"),
        (GOOD_COMMENT, "properties", '{"x":' + "9" * 5000 + "}", "invalid_value"),
        (GOOD_COMMENT, "properties", '{"x":1e400}', "invalid_value"),
        (GOOD_COMMENT, "properties", '{"x":1e-99999999999999999999}', "invalid_value"),
        (GOOD_COMMENT, "properties", '{"x":0e99999999999999999999}', "invalid_value"),
        (GOOD_COMMENT, "properties", '{"x":NaN}', "malformed_json"),
        (GOOD_COMMENT, "properties", '{"x":Infinity}', "malformed_json"),
        (GOOD_COMMENT, "properties", '{"x":"\\ud800"}', "malformed_json"),
        (GOOD_COMMENT, "properties", '{"x":1,"x":2}', "malformed_json"),
        (GOOD_PURCHASE, "amount", '"1000.00"', "malformed_json"),
        (GOOD_PURCHASE, "event_id", '"p2"', "malformed_json"),
    ],
)
def test_what_the_models_reject_the_fast_path_never_takes(
    body: dict[str, Any], field: str, raw: str, reason: str
) -> None:
    line = with_raw(body, field, raw, wrap=False, repeat=True)
    assert _native.fast_decode(line, CURRENCY) is None
    verdict = decode_flat(line, CURRENCY)
    assert len(verdict) == 2 and verdict[0] == reason, verdict


@pytest.mark.parametrize("amount", ["\u0661\u0662", "\uff11\uff12", "\u0e51\u0e52", "1_0.0_1"])
def test_an_amount_is_written_in_ascii_digits_only(amount: str) -> None:
    line = orjson.dumps({**GOOD_PURCHASE, "amount": amount})
    assert _native.fast_decode(line, CURRENCY) is None
    assert decode_flat(line, CURRENCY)[0] == "invalid_value"
