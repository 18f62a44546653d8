"""Marketing automation as a crm2stream subscriber: every marketing trigger becomes a
webhook call (a POST of the trigger as JSON, with the contact addresses it allows) to your
campaign tool.

    python examples/marketing_automation.py --api http://127.0.0.1:8765 \\
        --webhook https://campaigns.example.com/hooks/crm2stream --state triggers.offset

How it is done:
- It follows ``/topics/marketing-triggers/stream`` (Server-Sent Events). Only people who
  hold an unexpired ``marketing`` grant ever appear there: consent is enforced upstream.
- A trigger names a person id and a masked label, never a phone number or an address.
  The addresses it needs, it resolves through the API's single customer view
  (``/persons/{id}``, behind the token): for each channel granted, the person's
  identifiers of that kind (``sms``: phones, ``email``: emails, ``wechat``: WeChat ids;
  ``*``: all three), as ``contacts``.
- A trigger is acknowledged (its offset written to ``--state``) only after the webhook
  answered 2xx, so a restart resumes after the last delivered trigger, with
  ``Last-Event-ID``: nothing is skipped. A crash between delivery and acknowledgement
  delivers that trigger again, so each call carries ``Idempotency-Key`` (the topic and
  offset) for the receiver to drop repeats.
- Failures (connection errors, 5xx, 429) are retried with exponential backoff and jitter,
  up to ``--attempts``; a 4xx other than 429 will not improve by retrying, so the trigger
  is logged and skipped. A dropped stream reconnects the same way.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger("marketing-automation")
TOPIC = "marketing-triggers"
#: the identifier kinds a granted channel reaches
CHANNEL_KINDS: dict[str, tuple[str, ...]] = {
    "sms": ("phone",),
    "email": ("email",),
    "wechat": ("wechat",),
}
CHANNEL_KINDS["*"] = tuple(kind for kinds in CHANNEL_KINDS.values() for kind in kinds)


class Backoff:
    """Exponential backoff with full jitter: 0..min(cap, base * 2^attempt) seconds."""

    def __init__(self, base: float = 0.5, cap: float = 30.0) -> None:
        self.base, self.cap = base, cap

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2**attempt))


def read_offset(state: Path) -> int | None:
    """The offset of the last delivered trigger, if any."""
    text = state.read_text().strip() if state.exists() else ""
    return int(text) if text else None


def write_offset(state: Path, offset: int) -> None:
    temporary = state.with_suffix(".tmp")
    temporary.write_text(f"{offset}\n")
    temporary.replace(state)  # atomic: a crash leaves the old offset or the new one


def triggers(client: httpx.Client, after: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(offset, trigger) from the stream, starting after ``after`` (from the topic's
    beginning when None)."""
    headers = {} if after is None else {"Last-Event-ID": str(after)}
    with client.stream("GET", f"/topics/{TOPIC}/stream?from=0", headers=headers) as response:
        response.raise_for_status()
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line.startswith(":"):
                continue  # keep-alive
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
            elif "data" in fields:
                yield int(fields["id"]), json.loads(fields["data"])
                fields = {}


def contacts(
    client: httpx.Client, trigger: dict[str, Any], attempts: int, backoff: Backoff
) -> list[dict[str, str]]:
    """The addresses the trigger's grants allow, from the single customer view. The view
    follows the topics: a person just triggered may take a moment to appear (404)."""
    for attempt in range(attempts):
        response = client.get(f"/persons/{trigger['person_id']}")
        if response.status_code == 404:
            time.sleep(backoff.delay(attempt))
            continue
        response.raise_for_status()
        identifiers = [row["identifier"] for row in response.json()["identifiers"]]
        out = []
        for grant in trigger["grants"]:
            for kind in CHANNEL_KINDS.get(grant["channel"], ()):
                out += [
                    {**grant, "kind": kind, "value": identifier.partition(":")[2]}
                    for identifier in identifiers
                    if identifier.startswith(kind + ":")
                ]
        return out
    log.warning("no view of person %s: its trigger goes without contacts", trigger["person_id"])
    return []


def deliver(
    webhook: httpx.Client,
    url: str,
    offset: int,
    trigger: dict[str, Any],
    attempts: int,
    backoff: Backoff,
) -> bool:
    """POST one trigger until the receiver takes it; False when it refused it for good."""
    headers = {"Idempotency-Key": f"{TOPIC}:{offset}"}
    for attempt in range(attempts):
        try:
            response = webhook.post(url, json=trigger, headers=headers)
            if response.is_success:
                return True
            if response.status_code < 500 and response.status_code != 429:
                log.error("webhook refused trigger %d (%d): skipped", offset, response.status_code)
                return False
            problem = f"HTTP {response.status_code}"
        except httpx.TransportError as exc:
            problem = repr(exc)
        pause = backoff.delay(attempt)
        log.warning("trigger %d: %s; retrying in %.1f s", offset, problem, pause)
        time.sleep(pause)
    raise RuntimeError(f"trigger {offset}: the webhook failed {attempts} times")


def run(
    api: str,
    webhook_url: str,
    state: Path,
    *,
    token: str | None = None,
    attempts: int = 8,
    backoff: Backoff | None = None,
    limit: int | None = None,
) -> int:
    """Deliver triggers until stopped (or ``limit`` of them); the number delivered."""
    backoff = backoff or Backoff()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    delivered = 0
    failures = 0
    with (
        httpx.Client(base_url=api, headers=headers, timeout=None) as client,
        httpx.Client(timeout=10) as webhook,
    ):
        while limit is None or delivered < limit:
            try:
                for offset, trigger in triggers(client, read_offset(state)):
                    failures = 0
                    trigger["contacts"] = contacts(client, trigger, attempts, backoff)
                    if deliver(webhook, webhook_url, offset, trigger, attempts, backoff):
                        delivered += 1
                    write_offset(state, offset)
                    if limit is not None and delivered >= limit:
                        return delivered
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                pause = backoff.delay(failures)
                failures += 1
                log.warning("stream lost (%r); reconnecting in %.1f s", exc, pause)
                time.sleep(pause)
    return delivered


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8765")
    parser.add_argument("--webhook", required=True, help="URL the triggers are POSTed to")
    parser.add_argument("--state", type=Path, default=Path("marketing-triggers.offset"))
    parser.add_argument("--token", help="the API token, when the server has one")
    parser.add_argument("--attempts", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run(args.api, args.webhook, args.state, token=args.token, attempts=args.attempts)


if __name__ == "__main__":
    main()
