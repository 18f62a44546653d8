"""Run events through the compiled core alone, the way an engine would, and read every
table from the spec (``crm2stream.spec``) after checking the engine gives the same rows.

So every test of what a table means is also a test that the engine agrees with the spec.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from crm2stream.core.config import CoreConfig
from crm2stream.core.events import DAY_US, AnyEvent, parse_identifier_key
from crm2stream.core.tables import Row
from crm2stream.core.validation import Rejection, decode
from crm2stream.engine.core import Core
from crm2stream.spec import state_tables

CFG = CoreConfig(id_key=b"test-key")


@dataclass
class Run:
    """The engine's core after some lines, and the valid events among them in order."""

    core: Core
    cfg: CoreConfig
    events: list[AnyEvent] = field(default_factory=list)

    def latest_day(self) -> int | None:
        max_ts = self.core.max_ts
        return None if max_ts is None else max_ts // DAY_US


def run(lines: Iterable[bytes], batch: int = 1_000_000, cfg: CoreConfig = CFG) -> Run:
    """The lines in batches of ``batch``, score changes evaluated after each."""
    done = Run(Core(cfg), cfg)
    pending: list[bytes] = []

    def flush(start: int) -> None:
        done.core.process(b"\n".join(pending), start)
        done.core.score_changes(0, 0)

    position = 0
    for line in lines:
        result = decode(line, cfg.currency)
        if not isinstance(result, Rejection):
            done.events.append(result)
        pending.append(line)
        if len(pending) == batch:
            flush(position)
            position += len(pending)
            pending = []
    if pending:
        flush(position)
    return done


def tables(ran: Run, day: int | None = None) -> dict[str, list[Row]]:
    """Every state table as of a day (default: the latest event's), as the spec says; the
    engine's rows must be the same."""
    as_of = ran.latest_day() if day is None else day
    if as_of is None:
        return {}
    expected = state_tables(ran.events, as_of, ran.cfg)
    for name, rows in expected.items():
        assert list(ran.core.rows(name, as_of)) == rows, (name, as_of)
    return expected


def table(ran: Run, name: str, day: int | None = None) -> list[Row]:
    return tables(ran, day).get(name, [])


def digest(ran: Run, day: int | None = None) -> str:
    """The engine's digest of every state table as of a day (default: the latest)."""
    as_of = ran.latest_day() if day is None else day
    assert as_of is not None
    return ran.core.digest(as_of)


def anchors(ran: Run, day: int | None = None) -> dict[str, str]:
    """Person id -> its anchor, from the identity table (the only one naming identifiers:
    the other rows carry a masked label)."""
    return {str(r["person_id"]): str(r["anchor"]) for r in table(ran, "identity", day)}


def members(ran: Run, day: int | None = None) -> dict[str, list[str]]:
    """Anchor -> its person's identifiers, in key order."""
    out: dict[str, list[str]] = {}
    for row in table(ran, "identity", day):
        out.setdefault(str(row["anchor"]), []).append(str(row["identifier"]))
    return out


def by_anchor(ran: Run, name: str, day: int | None = None) -> dict[str, Row]:
    """A person-keyed table's rows by their person's anchor."""
    named = anchors(ran, day)
    return {named[str(row["person_id"])]: row for row in table(ran, name, day)}


def decode_key(ident: dict[str, str]) -> str:
    """The normalised kind:value of a wire identifier."""
    return parse_identifier_key(f"{ident['kind']}:{ident['value']}").key


def utc(stamp: str) -> str:
    """A comparable UTC form of a test timestamp (tests write them in UTC already)."""
    assert stamp.endswith("Z")
    return stamp
