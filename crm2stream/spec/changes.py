"""Score changes and marketing triggers: what subscribers react to, batch by batch.

Unlike the tables, they depend on how the events arrived: one evaluation per batch. After
each batch that accepted an event, every person holding an identifier the batch touched is
valued as of the latest event time: the identifiers its events name, and the sharers that
its shares and the purchases it referred through a share credit (``value.credited``). A
record is emitted when the tier differs from the person's last record, or the composite
moved by at least ``score_change_delta`` since it (a person without a record starts from 0
in the lowest tier). A record is also a marketing trigger when, and only when, the person
holds an unexpired ``marketing`` grant at that moment: its grantees and channels.
"""

from __future__ import annotations

from collections.abc import Iterable

from crm2stream.core.config import CoreConfig
from crm2stream.core.events import (
    AnyEvent,
    PurchaseEvent,
    ShareEvent,
    format_micros,
    timestamp_micros,
)
from crm2stream.core.labels import label
from crm2stream.core.tables import Row
from crm2stream.spec.history import day_of, end_of_day, fold
from crm2stream.spec.persons import persons
from crm2stream.spec.tables import active, deciding_grants
from crm2stream.spec.value import credited, scores


def score_changes(
    batches: Iterable[list[AnyEvent]], cfg: CoreConfig
) -> list[tuple[list[Row], list[Row]]]:
    """Per batch (valid events, in arrival order): its (score changes, marketing triggers),
    each sorted by person id."""
    seen: set[str] = set()
    events: list[AnyEvent] = []
    last: dict[str, tuple[float, str]] = {}  # person id -> (composite, tier) of its last record
    out: list[tuple[list[Row], list[Row]]] = []
    for batch in batches:
        new = []
        for event in batch:
            if event.event_id not in seen:
                seen.add(event.event_id)
                new.append(event)
        events += new
        if not new:
            out.append(([], []))
            continue
        moment = max(timestamp_micros(event.occurred_at) for event in events)
        day = day_of(moment)
        history = fold(events, end_of_day(day))
        touched = {ident.key for event in new for ident in event.identifiers()}
        for event in new:
            credits = event.event_id if isinstance(event, ShareEvent) else None
            if isinstance(event, PurchaseEvent):
                credits = event.referral_share_id
            if credits is not None and credits in history.shares:
                touched |= set(credited(history, history.shares[credits], cfg.cascade_depth))
        changes: list[Row] = []
        triggers: list[Row] = []
        for person in persons(history, cfg.id_key):
            if touched.isdisjoint(person.members):
                continue
            value = scores(history, person, day, cfg)
            composite, tier = value["composite"], value["tier"]
            before = last.get(person.person_id, (0.0, cfg.lowest_tier))
            if tier == before[1] and abs(composite - before[0]) < cfg.score_change_delta:
                continue
            last[person.person_id] = (composite, tier)
            head = {
                "person_id": person.person_id,
                "label": label(person.anchor, cfg.raw_labels),
                "at": format_micros(moment),
                "composite": composite,
                "tier": tier,
            }
            changes.append(
                {
                    **head,
                    "previous_composite": before[0],
                    "previous_tier": before[1],
                    "consumption": value["consumption"],
                    "popularity": value["popularity"],
                    "social": value["social"],
                }
            )
            grants = [
                {"grantee": grant.grantee, "channel": grant.channel}
                for grant in deciding_grants(history, person)
                if grant.purpose == "marketing" and active(grant, moment)
            ]
            if grants:
                triggers.append({**head, "previous_tier": before[1], "grants": grants})
        out.append((changes, triggers))
    return out
