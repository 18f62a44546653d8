"""Permission: what each person allows, to whom, for what, on which channel, until when.

Per person, the latest permission event per (grantee, purpose, channel) by
(occurred_at, event_id) across all the person's identifiers decides. Marketing only ever
sees people holding an unexpired ``marketing`` grant.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from crm2stream.core.facts import ConsentEntry, ConsentKey, Facts


@dataclass(frozen=True, slots=True)
class Grant:
    grantee: str
    purpose: str
    channel: str
    granted: bool
    expires_at: int | None
    occurred_at: int
    event_id: str

    def active_at(self, moment: int) -> bool:
        return self.granted and (self.expires_at is None or self.expires_at > moment)


def consent_of(facts: Facts, members: tuple[str, ...], cutoff: int) -> list[Grant]:
    """The deciding permission per (grantee, purpose, channel), as of cutoff, sorted by key."""
    latest: dict[ConsentKey, ConsentEntry] = {}
    for key in members:
        for scope, history in facts.idents[key].consent.items():
            index = bisect_right(history, cutoff, key=lambda entry: entry[0])
            if index == 0:
                continue
            entry = history[index - 1]
            held = latest.get(scope)
            if held is None or entry[:2] > held[:2]:
                latest[scope] = entry
    return [
        Grant(scope[0], scope[1], scope[2], entry[2], entry[3], entry[0], entry[1])
        for scope, entry in sorted(latest.items())
    ]


def marketing_grants(grants: list[Grant], moment: int) -> list[dict[str, str]]:
    """The grantees and channels a person currently allows marketing from."""
    return [
        {"grantee": g.grantee, "channel": g.channel}
        for g in grants
        if g.purpose == "marketing" and g.active_at(moment)
    ]
