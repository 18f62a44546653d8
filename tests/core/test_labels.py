"""Labels: how rows outside the identity table name a person, alike in the engine and the spec."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crm2stream.core.events import parse_identifier_key
from crm2stream.core.labels import masked
from tests import harness
from tests.events import purchase
from tests.harness import CFG


@pytest.mark.parametrize(
    ("identifier", "label"),
    [
        ("phone:+8613800001111", "phone:+86138****1111"),  # country, carrier; last four
        ("phone:13800001111", "phone:138****1111"),
        ("email:alice@example.com", "email:a****@example.com"),
        ("wechat:fan00012", "wechat:fa****12"),
        ("member_card:LM000123", "member_card:LM****23"),
        ("qq:1", "qq:****"),
    ],
)
def test_a_label_masks_most_of_an_identifier(identifier: str, label: str) -> None:
    assert masked(identifier) == label


def labels(actor: str, raw: bool) -> str:
    """The label of a person whose anchor is ``actor``, as the engine and the spec write it
    (``harness.table`` checks they agree)."""
    kind, _, value = actor.partition(":")
    body = purchase("p", "2026-11-01T10:00:00Z", "qq:x", "1")
    body["actor"] = {"kind": kind, "value": value}
    ran = harness.run([orjson.dumps(body)], cfg=replace(CFG, raw_labels=raw))
    [row] = harness.table(ran, "persons")
    return str(row["label"])


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["phone", "email", "wechat", "qq"]),
    st.text(
        st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1, max_size=20
    ),
)
def test_the_engine_labels_as_the_spec_and_raw_labels_are_an_opt_in(kind: str, value: str) -> None:
    try:
        actor = parse_identifier_key(f"{kind}:{value}").key  # as events normalise it
    except ValueError:
        assume(False)
    assert labels(actor, raw=False) == masked(actor), actor
    assert labels(actor, raw=True) == actor
