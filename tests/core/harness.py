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


def anchors(facts: Facts, day: int | None = None) -> dict[str, str]:
    """Person id -> its anchor, from the identity table (the only one naming identifiers:
    the other rows carry a masked label)."""
    return {str(r["person_id"]): str(r["anchor"]) for r in table(facts, "identity", day)}


def members(facts: Facts, day: int | None = None) -> dict[str, list[str]]:
    """Anchor -> its person's identifiers, in key order."""
    out: dict[str, list[str]] = {}
    for row in table(facts, "identity", day):
        out.setdefault(str(row["anchor"]), []).append(str(row["identifier"]))
    return out


def by_anchor(facts: Facts, name: str, day: int | None = None) -> dict[str, dict[str, object]]:
    """A person-keyed table's rows by their person's anchor."""
    named = anchors(facts, day)
    return {named[str(row["person_id"])]: row for row in table(facts, name, day)}


def decode_key(ident: dict[str, str]) -> str:
    """The normalised kind:value of a wire identifier."""
    return parse_identifier_key(f"{ident['kind']}:{ident['value']}").key


def utc(stamp: str) -> str:
    """A comparable UTC form of a test timestamp (tests write them in UTC already)."""
    assert stamp.endswith("Z")
    return stamp
