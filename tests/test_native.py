"""The compiled core's fast decoder against the reference decoder (the pydantic models).

The fast path may decline any line, but what it accepts it must accept exactly as the
models do, with the same normalised values: otherwise the two cores would disagree.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from crm2stream import _native
from crm2stream.core.flat import decode_flat
from crm2stream.synth import BAD_LINES, Campaign, lines
from tests.conformance import BAD_INPUT
from tests.core.strategies import event_sets

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
