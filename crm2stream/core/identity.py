"""Individual identification: which identifiers are one person, as of any moment.

A link between two identifiers exists iff the latest identify/unlink naming the pair, by
(occurred_at, event_id), is an identify. A person is a connected component of the links
that exist; its anchor is the member seen first, and its id is a keyed hash of the anchor,
stable across merges that keep the anchor and not recomputable from a phone number.
"""

from __future__ import annotations

import hashlib
import hmac
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from crm2stream.core.facts import Facts, LinkEntry


@dataclass(frozen=True, slots=True)
class Person:
    person_id: str
    anchor: str
    members: tuple[str, ...]  # sorted "kind:value"


@lru_cache(maxsize=1 << 18)
def person_id_of(anchor: str, id_key: bytes) -> str:
    """ "p_" + 20 hex chars of HMAC-SHA256(id_key, anchor): stable, but not recomputable
    from a phone number without the key."""
    digest = hmac.new(id_key, anchor.encode("utf-8"), hashlib.sha256).hexdigest()
    return "p_" + digest[:20]


def linked_at(history: list[LinkEntry], cutoff: int) -> bool:
    """Whether the pair is linked counting only entries that occurred at or before cutoff."""
    index = bisect_right(history, cutoff, key=lambda entry: entry[0])
    return index > 0 and history[index - 1][2]


def make_person(facts: Facts, members: Iterable[str], id_key: bytes) -> Person:
    ordered = tuple(sorted(members))
    idents = facts.idents
    anchor = min(ordered, key=lambda key: (idents[key].first, key))
    return Person(person_id_of(anchor, id_key), anchor, ordered)


class Partition:
    """All persons as of a cutoff (inclusive, in microseconds)."""

    def __init__(self, facts: Facts, cutoff: int, id_key: bytes) -> None:
        parent: dict[str, str] = {
            key: key for key, ident in facts.idents.items() if ident.first[0] <= cutoff
        }

        def find(key: str) -> str:
            root = key
            while parent[root] != root:
                root = parent[root]
            while parent[key] != root:
                parent[key], key = root, parent[key]
            return root

        latest = cutoff >= (facts.max_ts if facts.max_ts is not None else 0)
        for (a, b), history in facts.pairs.items():
            linked = history[-1][2] if latest else linked_at(history, cutoff)
            if linked:
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
        groups: dict[str, list[str]] = {}
        for key in parent:
            groups.setdefault(find(key), []).append(key)
        persons = [make_person(facts, members, id_key) for members in groups.values()]
        self.persons: list[Person] = sorted(persons, key=lambda p: p.person_id)
        self.person_of: dict[str, Person] = {
            member: person for person in self.persons for member in person.members
        }


def current_component(facts: Facts, key: str) -> set[str]:
    """The identifiers linked to ``key`` now (all events seen), by graph search."""
    component = {key}
    frontier = [key]
    adjacency = facts.adjacency
    while frontier:
        node = frontier.pop()
        for neighbour in adjacency.get(node, ()):
            if neighbour not in component:
                component.add(neighbour)
                frontier.append(neighbour)
    return component


def current_person(facts: Facts, key: str, id_key: bytes) -> Person:
    """The person ``key`` belongs to now, cached until a link or an anchor changes."""
    person: Person | None = facts.person_cache.get(key)
    if person is None:
        person = make_person(facts, current_component(facts, key), id_key)
        for member in person.members:
            facts.person_cache[member] = person
    return person
