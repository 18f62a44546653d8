"""Run events through the pure core alone, the way an engine would, with no engine."""

from __future__ import annotations

from collections.abc import Iterable

from crm2stream.core.changes import score_changes
from crm2stream.core.config import CoreConfig
from crm2stream.core.decay import Scales
from crm2stream.core.events import parse_identifier_key
from crm2stream.core.facts import Facts, apply
from crm2stream.core.tables import TableView, latest_day
from crm2stream.core.validation import Rejection, decode

CFG = CoreConfig(id_key=b"test-key")


def run(lines: Iterable[bytes], batch: int = 1_000_000, cfg: CoreConfig = CFG) -> Facts:
    facts = Facts(Scales.of(cfg))
    pending = 0
    for position, line in enumerate(lines):
        result = decode(line, cfg.currency)
        if not isinstance(result, Rejection):
            apply(facts, result, position)
        pending += 1
        if pending == batch:
            score_changes(facts, cfg)
            pending = 0
    score_changes(facts, cfg)
    return facts


def view(facts: Facts, day: int | None = None, cfg: CoreConfig = CFG) -> TableView:
    as_of = latest_day(facts) if day is None else day
    assert as_of is not None
    return TableView(facts, cfg, as_of)


def table(facts: Facts, name: str, day: int | None = None) -> list[dict[str, object]]:
    return list(view(facts, day).rows(name))


def decode_key(ident: dict[str, str]) -> str:
    """The normalised kind:value of a wire identifier."""
    return parse_identifier_key(f"{ident['kind']}:{ident['value']}").key


def utc(stamp: str) -> str:
    """A comparable UTC form of a test timestamp (tests write them in UTC already)."""
    assert stamp.endswith("Z")
    return stamp
