"""Identifier normalisation and the flat kind:value form."""

from __future__ import annotations

import pytest

from crm2stream.core.events import (
    IdentifyEvent,
    PermissionEvent,
    format_day,
    format_micros,
    parse_day,
    parse_identifier_key,
)
from crm2stream.core.validation import decode
from tests.events import identify, line, permission


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("phone:+86 (138) 0000-1111", "phone:+8613800001111"),
        ("phone:138.0000.1111", "phone:13800001111"),
        ("email:  Ann.Lee@Example.COM ", "email:ann.lee@example.com"),
        ("wechat:  wxid_AbC ", "wechat:wxid_AbC"),
        ("member_card:0042", "member_card:0042"),
    ],
)
def test_identifier_normalisation(raw: str, key: str) -> None:
    assert parse_identifier_key(raw).key == key


def test_identifier_value_may_contain_colons() -> None:
    assert parse_identifier_key("device:aa:bb:cc").value == "aa:bb:cc"


def test_identifier_key_needs_a_kind() -> None:
    with pytest.raises(ValueError):
        parse_identifier_key("13800001111")
    with pytest.raises(ValueError, match="must match"):
        parse_identifier_key("Phone:1")


def test_the_same_handle_written_two_ways_is_one_identifier() -> None:
    event = decode(line(identify("i", "2026-11-01T00:00:00Z", "phone:1-2", "email:A@b.c")), "CNY")
    assert isinstance(event, IdentifyEvent)
    assert event.actor == parse_identifier_key("phone:12")
    assert event.link.key == "email:a@b.c"
    assert event.model_dump(mode="json")["link"] == {"kind": "email", "value": "a@b.c"}


def test_permission_tokens_are_lower_cased_and_channel_defaults_to_all() -> None:
    raw = line(permission("p", "2026-11-01T00:00:00Z", "qq:1", purpose=" Marketing "))
    event = decode(raw, "CNY")
    assert isinstance(event, PermissionEvent)
    assert (event.purpose, event.channel) == ("marketing", "*")


def test_days_and_timestamps_round_trip() -> None:
    day = parse_day("2026-11-01")
    assert format_day(day) == "2026-11-01"
    assert parse_day("2026-11-01T23:30:00-01:00") == day + 1
    assert format_micros(day * 86_400_000_000) == "2026-11-01T00:00:00Z"
    with pytest.raises(ValueError):
        parse_day("November")
