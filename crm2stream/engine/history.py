"""A person's history: the events naming any of their identifiers, read back from the log
by the positions the store indexes (``x/``), in event-time order; the person of an
identifier from the links that stand now (``g/``). Both read only that person's keys."""

from __future__ import annotations

from collections.abc import Iterable

from crm2stream.core.events import AnyEvent, timestamp_micros
from crm2stream.core.tables import Row
from crm2stream.core.validation import Rejection, decode
from crm2stream.engine.results import EngineError, dead_letter
from crm2stream.engine.store import Store


def members_of(store: Store, identifier: str) -> set[str] | None:
    """The identifiers linked to ``identifier`` now, through any chain of links (itself
    included); None when no accepted event named it."""
    if not store.known(identifier):
        return None
    members, todo = {identifier}, [identifier]
    while todo:
        for other in store.linked(todo.pop()):
            if other not in members:
                members.add(other)
                todo.append(other)
    return members


def events_of(store: Store, members: Iterable[str], currency: str) -> list[Row]:
    """The accepted events naming any of ``members``, in event-time order."""
    positions = {at for member in members for at in store.mentions(member)}
    return events_naming(store, positions, currency)


def events_naming(store: Store, positions: Iterable[int], currency: str) -> list[Row]:
    """The events at these log positions (each accepted once), in event-time order.

    A stored line the contract of this version no longer accepts (it was accepted by an
    older, more lenient one) is shown all the same, after the others: its offset, its
    bytes and why it would be rejected now. Stored data never stops a read."""
    events: list[tuple[tuple[int, str], Row]] = []
    unreadable: list[Row] = []
    for position, raw in store.lines_at(positions):
        if raw is None:
            raise EngineError(f"log position {position} is missing")
        event = decode(raw, currency)
        if isinstance(event, Rejection):
            unreadable.append(dead_letter(position, raw, event))
            continue
        key = (timestamp_micros(event.occurred_at), event.event_id)
        events.append((key, _event_row(event, position)))
    return [row for _, row in sorted(events, key=lambda item: item[0])] + unreadable


def _event_row(event: AnyEvent, position: int) -> Row:
    """The event as the contract reads it (timestamps in UTC, as ``format_micros`` writes
    them), after its log position."""
    row: Row = {"offset": position}
    row.update(event.model_dump(mode="json", exclude_none=True))
    return row
