"""Builders of wire-format events for tests: one place that knows the v1 shapes."""

from __future__ import annotations

from typing import Any

import orjson


def ident(text: str) -> dict[str, str]:
    kind, _, value = text.partition(":")
    return {"kind": kind, "value": value}


def event(event_id: str, kind: str, at: str, actor: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"event_id": event_id, "type": kind, "occurred_at": at}
    body["actor"] = ident(actor)
    for name, value in fields.items():
        if name in ("link", "content_owner", "reply_to"):
            value = ident(value)
        elif name == "recipients":
            value = [ident(v) for v in value]
        body[name] = value
    return body


def identify(event_id: str, at: str, actor: str, link: str) -> dict[str, Any]:
    return event(event_id, "identify", at, actor, link=link)


def unlink(event_id: str, at: str, actor: str, link: str) -> dict[str, Any]:
    return event(event_id, "unlink", at, actor, link=link)


def purchase(event_id: str, at: str, actor: str, amount: str, **fields: Any) -> dict[str, Any]:
    return event(
        event_id,
        "purchase",
        at,
        actor,
        order_id=f"o-{event_id}",
        amount=amount,
        currency="CNY",
        **fields,
    )


def share(event_id: str, at: str, actor: str, **fields: Any) -> dict[str, Any]:
    return event(event_id, "share", at, actor, content_id=f"c-{event_id}", **fields)


def comment(event_id: str, at: str, actor: str, **fields: Any) -> dict[str, Any]:
    return event(event_id, "comment", at, actor, content_id=f"c-{event_id}", **fields)


def permission(
    event_id: str, at: str, actor: str, granted: bool = True, **fields: Any
) -> dict[str, Any]:
    fields.setdefault("grantee", "brand:lumiere")
    fields.setdefault("purpose", "marketing")
    return event(event_id, "permission", at, actor, granted=granted, **fields)


def line(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def lines(bodies: list[dict[str, Any]]) -> list[bytes]:
    return [line(body) for body in bodies]
