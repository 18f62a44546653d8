"""``topology.yaml``, loaded and checked: the names every engine and tool agree on."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from crm2stream.core.tables import STATE_TABLES

TOPOLOGY_FILE = Path(__file__).with_name("topology.yaml")


class Topic(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    key: str | list[str]
    #: what a table topic's records are keyed by, when not ``key`` (a record then holds
    #: every row of that key)
    topic_key: str | None = None
    name: str | None = None
    partitions: int | None = Field(None, ge=1)
    config: dict[str, str] = Field(default_factory=dict)

    def record_key(self, row: dict[str, Any]) -> str:
        """The key of the table-topic record that holds ``row``: its ``topic_key`` field
        (a record of all that key's rows), else its key fields joined by ``>``."""
        fields = [self.topic_key] if self.topic_key else self.key
        return ">".join(str(row[f]) for f in ([fields] if isinstance(fields, str) else fields))


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    partitions: int = Field(ge=1)
    table_config: dict[str, str]
    stream_config: dict[str, str]


class Topology(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    input: Topic
    tables: dict[str, Topic]
    streams: dict[str, Topic]
    dead_letter: Topic
    defaults: Defaults

    @property
    def dlq(self) -> str:
        return self.dead_letter.name or "dlq"

    @property
    def exportable(self) -> tuple[str, ...]:
        """Everything ``export`` can print: tables, then change streams, then dead letters."""
        return (*self.tables, *self.streams, self.dlq)

    def check(self) -> Topology:
        if tuple(self.tables) != STATE_TABLES:
            raise ValueError(
                f"topology tables {list(self.tables)} must be the core's state tables "
                f"{list(STATE_TABLES)}, in that order"
            )
        return self


def load_topology(path: Path | None = None) -> Topology:
    return _load(path or TOPOLOGY_FILE)


@lru_cache(maxsize=4)
def _load(path: Path) -> Topology:
    with path.open(encoding="utf-8") as handle:
        raw: Any = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return Topology.model_validate(raw).check()
