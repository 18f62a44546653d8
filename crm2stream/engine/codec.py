"""The reference core's persisted form of its facts: one compact JSON record per key.

Write-behind: the engine keeps the facts in memory and, at each checkpoint, writes the
records whose keys the core marked dirty, framed into a segment (``segments``).
"""

from __future__ import annotations

from array import array

import orjson

from crm2stream.core.facts import Facts, IdentFacts, Share

SEP = "\x1f"  # identifiers never contain control characters


def encode_ident(facts: Facts, key: str) -> bytes:
    ident = facts.idents[key]
    shares = {}
    for sid in ident.shares:
        share = facts.shares[sid]
        shares[sid] = (share.ts, share.parent, share.recipients)
    return orjson.dumps(
        [
            ident.first[0],
            ident.first[1],
            ident.days,
            ident.out,
            shares,
            [[*scope, history] for scope, history in ident.consent.items()],
            ident.mentions.tolist(),
            [format(total, "x") for total in ident.sums],
        ],
        option=orjson.OPT_NON_STR_KEYS,
    )


def decode_ident(facts: Facts, key: str, data: bytes) -> None:
    first_ts, first_eid, days, out, shares, consent, mentions, sums = orjson.loads(data)
    ident = IdentFacts(
        first=(first_ts, first_eid),
        days=days,
        out=out,
        shares=list(shares),
        consent={
            (grantee, purpose, channel): [tuple(entry) for entry in history]
            for grantee, purpose, channel, history in consent
        },
        mentions=array("q", mentions),
        sums=[int(total, 16) for total in sums],
    )
    facts.idents[key] = ident
    for sid, (ts, parent, recipients) in shares.items():
        facts.shares[sid] = Share(key, ts, parent, recipients)


def encode_pair(facts: Facts, pair: tuple[str, str]) -> tuple[bytes, bytes]:
    return (pair[0] + SEP + pair[1]).encode(), orjson.dumps(facts.pairs[pair])


def decode_pair(facts: Facts, key: bytes, data: bytes) -> None:
    a, _, b = key.decode().partition(SEP)
    facts.pairs[(a, b)] = [(ts, eid, linked) for ts, eid, linked in orjson.loads(data)]


def encode_referrals(facts: Facts, share_id: str) -> bytes:
    return orjson.dumps(facts.referrals[share_id])


def decode_referrals(facts: Facts, share_id: str, data: bytes) -> None:
    facts.referrals[share_id] = [(ts, units) for ts, units in orjson.loads(data)]


def encode_emitted(facts: Facts, person_id: str) -> bytes:
    return orjson.dumps(facts.last_emitted[person_id])


def decode_emitted(facts: Facts, person_id: str, data: bytes) -> None:
    composite, tier = orjson.loads(data)
    facts.last_emitted[person_id] = (composite, tier)
