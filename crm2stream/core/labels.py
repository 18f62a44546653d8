"""What a person is called outside the identity table: a label, not an identifier.

Person ids are keyed hashes so that consumers of the tables, the change streams and the
webhook feed need not see phone numbers. Where a person reading a dashboard needs more
than a hash, rows carry a label: the person's anchor with most of its value masked
(``phone:+86138****1111``), enough to tell people apart, not to reach them. The raw
identifiers stay in the identity table and the single customer view (behind the API's
token); an operator who wants raw anchors as labels opts in (``CRM2STREAM_LABELS=raw``).
"""

from __future__ import annotations

#: what stands for the hidden characters, however many they are
HIDDEN = "****"


def masked(identifier: str) -> str:
    """``kind:value`` with the value masked: a phone keeps its first digits (the country
    and carrier prefix) and its last four; an email the first character of its local part
    and its domain; any other value at most two characters at either end, a quarter of
    it each."""
    kind, _, value = identifier.partition(":")
    n = len(value)
    if kind == "phone" and n >= 11:
        shown = value[: n - 8] + HIDDEN + value[n - 4 :]
    elif kind == "email" and "@" in value[1:]:
        local, _, domain = value.rpartition("@")
        shown = local[:1] + HIDDEN + "@" + domain
    else:
        keep = min(2, n // 4)
        shown = value[:keep] + HIDDEN + (value[n - keep :] if keep else "")
    return f"{kind}:{shown}"


def label(anchor: str, raw: bool) -> str:
    """A person's label: its anchor, masked unless raw labels were asked for."""
    return anchor if raw else masked(anchor)
