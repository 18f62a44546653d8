"""Persons: the connected components of the links that exist.

A link between two identifiers exists iff the latest identify/unlink of that pair is an
identify (``history.links``). Every identifier seen is in exactly one person; the anchor is
the member seen first (ties broken by the identifier), and the person id is a keyed hash
of the anchor, so that it survives merges that keep the anchor and cannot be recomputed
from a phone number without the key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from crm2stream.spec.history import History


@dataclass(frozen=True)
class Person:
    person_id: str
    anchor: str
    members: tuple[str, ...]  # sorted


def person_id_of(anchor: str, id_key: bytes) -> str:
    """ "p_" and the first 20 hex digits of HMAC-SHA256(id_key, anchor)."""
    return "p_" + hmac.new(id_key, anchor.encode("utf-8"), hashlib.sha256).hexdigest()[:20]


def persons(history: History, id_key: bytes) -> list[Person]:
    """Every person, sorted by person id."""
    parent = {identifier: identifier for identifier in history.first_seen}

    def root(identifier: str) -> str:
        while parent[identifier] != identifier:
            identifier = parent[identifier]
        return identifier

    for a, b in history.linked():
        ra, rb = root(a), root(b)
        parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = {}
    for identifier in parent:
        groups.setdefault(root(identifier), []).append(identifier)
    found = []
    for members in groups.values():
        anchor = min(members, key=lambda m: (history.first_seen[m], m))
        found.append(Person(person_id_of(anchor, id_key), anchor, tuple(sorted(members))))
    return sorted(found, key=lambda person: person.person_id)
