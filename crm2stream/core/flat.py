"""The flat form of a valid event: the tuple the compiled core applies.

The compiled core decodes the lines it can vouch for by itself; for every other line it
asks the reference decoder (``validation.decode``), which rejects it with a reason or
hands back this form. It is also how tests compare the two decoders.
"""

from __future__ import annotations

from crm2stream.core.events import (
    AnyEvent,
    CommentEvent,
    IdentifyEvent,
    PermissionEvent,
    PurchaseEvent,
    ShareEvent,
    timestamp_micros,
)
from crm2stream.core.validation import Rejection, decode

Permission = tuple[str, str, str, bool, int | None]
#: (event_id, type, occurred_at micros, actor, link, content_owner, reply_to, recipients,
#:  parent_share_id, amount units, referral_share_id, permission)
FlatEvent = tuple[
    str,
    str,
    int,
    str,
    str | None,
    str | None,
    str | None,
    list[str],
    str | None,
    int,
    str | None,
    Permission | None,
]


def flatten(event: AnyEvent) -> FlatEvent:
    link = owner = reply_to = parent = referral = None
    recipients: list[str] = []
    units = 0
    permission: Permission | None = None
    if isinstance(event, IdentifyEvent):
        link = event.link.key
    elif isinstance(event, ShareEvent):
        owner = None if event.content_owner is None else event.content_owner.key
        recipients = [r.key for r in event.recipients or ()]
        parent = event.parent_share_id
    elif isinstance(event, CommentEvent):
        owner = None if event.content_owner is None else event.content_owner.key
        reply_to = None if event.reply_to is None else event.reply_to.key
    elif isinstance(event, PurchaseEvent):
        units = event.amount_units
        referral = event.referral_share_id
    elif isinstance(event, PermissionEvent):
        expires = None if event.expires_at is None else timestamp_micros(event.expires_at)
        permission = (event.grantee, event.purpose, event.channel, event.granted, expires)
    return (
        event.event_id,
        event.type,
        timestamp_micros(event.occurred_at),
        event.actor.key,
        link,
        owner,
        reply_to,
        recipients,
        parent,
        units,
        referral,
        permission,
    )


def decode_flat(line: bytes, currency: str) -> FlatEvent | tuple[str, str]:
    """The reference decoder's answer: the flat event, or (reason, error)."""
    result = decode(line, currency)
    if isinstance(result, Rejection):
        return (result.reason, result.error)
    return flatten(result)
