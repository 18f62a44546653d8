"""Types of the compiled core (``native/``)."""

from collections.abc import Callable
from typing import Any

_Permission = tuple[str, str, str, bool, int | None]
_Flat = tuple[
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
    _Permission | None,
]

def fast_decode(line: bytes, currency: str) -> _Flat | None: ...

class Core:
    max_ts: int | None
    def __init__(
        self,
        *,
        currency: str,
        id_key: bytes,
        half_life: float,
        received: tuple[int, ...],
        ties: tuple[int, ...],
        credit: list[int],
        cascade_depth: int,
        consumption_scale: float,
        popularity_scale: float,
        social_scale: float,
        reach_weight: float,
        referred_revenue_weight: float,
        weights: tuple[float, float, float],
        tiers: list[tuple[str, float]],
        delta: float,
    ) -> None: ...
    def process(
        self, lines: list[bytes], start: int, fallback: Callable[[bytes], tuple[Any, ...]]
    ) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]], int, bytes]: ...
    def score_changes(self) -> tuple[list[bytes], list[bytes]]: ...
    def checkpoint(self) -> list[tuple[str, bytes, bytes]]: ...
    def load(self, table: str, records: list[tuple[bytes, bytes]]) -> None: ...
    def finish_load(self, seen: list[str], max_ts: int | None) -> None: ...
    def rebuild_sums(self) -> None: ...
    def rows(self, table: str, as_of_day: int) -> list[dict[str, Any]]: ...
    def digest(self, as_of_day: int) -> str: ...
    def mentions(self, keys: list[str]) -> list[int]: ...
    def component(self, key: str) -> list[str] | None: ...
    def person_members(self, person_id: str, as_of_day: int) -> list[str] | None: ...
    def __len__(self) -> int: ...
