"""Types of the compiled core (``native/``)."""

from collections.abc import Callable
from typing import Any

from crm2stream.core.flat import FlatEvent as _Flat

def fast_decode(line: bytes, currency: str) -> _Flat | None: ...
def frame(data: bytes, start: int, limit: int, last: bool) -> tuple[bytes, int, int]: ...
def json_fault(line: bytes) -> tuple[str, str] | None:
    """Why a line is not I-JSON, as (reason, error); None when it is."""

class JsonArray:
    """A JSON array body framed into log lines, one per element; raises ValueError when
    the body is not one array."""
    def __init__(self, body: bytes) -> None: ...
    def take(self, limit: int) -> tuple[bytes, int, list[tuple[int, bytes]]]: ...

class TopicLatest:
    """Each key's latest offset over a table topic's parts, added in offset order."""
    def __init__(self) -> None: ...
    def add(self, first: int, part: bytes) -> None: ...
    def __len__(self) -> int: ...
    def compact(self, first: int, part: bytes) -> bytes | None:
        """The part without superseded records: the same object when none is, None when
        none is left."""
        ...

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
        future_tolerance: int,
        raw_labels: bool,
        indexes: bool = False,
    ) -> None: ...
    def process(
        self,
        chunk: bytes,
        start: int,
        fallback: Callable[[bytes], tuple[Any, ...]],
        arrival: int | None = None,
        known: Callable[[list[str]], list[bool]] | None = None,
    ) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]], int, int, bytes]: ...
    def score_changes(
        self, change_base: int, trigger_base: int
    ) -> tuple[tuple[int, bytes], tuple[int, bytes]]: ...
    def begin_publication(self) -> int: ...
    def publish(self, bases: list[int], limit: int) -> list[tuple[int, bytes]]: ...
    def begin_checkpoint(self, full: bool) -> None: ...
    def checkpoint_part(self) -> bytes | None: ...
    def load_part(self, part: bytes) -> None: ...
    def add_seen(self, ids: list[str]) -> None: ...
    def finish_load(self, max_ts: int | None) -> None: ...
    def rebuild_sums(self) -> None: ...
    def rows(self, table: str, as_of_day: int) -> list[dict[str, Any]]: ...
    def digest(self, as_of_day: int) -> str: ...
    def take_indexes(self) -> tuple[list[bytes], list[tuple[bytes, bool]]]: ...
    def person_members(self, person_id: str, as_of_day: int) -> list[str] | None: ...
    def __len__(self) -> int: ...

def kafka_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partition of a key (murmur2)."""

def record_batches(
    ndjson: bytes,
    field: str,
    partitions: int,
    timestamp_ms: int,
    max_bytes: int,
    tombstones: bool,
    headers: list[tuple[str, bytes]],
) -> list[tuple[int, bytes, int]]:
    """Kafka record batches of NDJSON lines: (partition, batch, records)."""
