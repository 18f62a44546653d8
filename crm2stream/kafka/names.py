"""Every Kafka name the distributed engine uses, from ``topology.yaml``, a namespace and an
application version.

The namespace prefixes every topic and consumer group, so several installations (or test
runs) share one cluster. The application version names what belongs to one build of the
tables: the accepted topic, the changelog and the consumer groups. A replay builds a new
version beside the running one (see ``replay``); the input and output topics are shared.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm2stream.topology import Topology, load_topology


@dataclass(frozen=True, slots=True)
class Names:
    topology: Topology
    namespace: str = ""
    version: int = 1

    @classmethod
    def of(cls, namespace: str = "", version: int = 1) -> Names:
        return cls(load_topology(), namespace, version)

    def topic(self, name: str) -> str:
        return f"{self.namespace}.{name}" if self.namespace else name

    @property
    def app_id(self) -> str:
        """The faust application id: its consumer group."""
        return self.topic(f"crm2stream-v{self.version}")

    @property
    def intake_group(self) -> str:
        """The consumer group of the workers' intakes (see ``intake``)."""
        return f"{self.app_id}-intake"

    @property
    def input(self) -> str:
        return self.topic(self.topology.input.topic)

    @property
    def accepted(self) -> str:
        """The intake's output, the table stage's input: one partition (see ``worker``)."""
        return f"{self.app_id}.accepted"

    @property
    def changelog(self) -> str:
        return f"{self.app_id}.changelog"

    @property
    def tables(self) -> dict[str, str]:
        return {name: self.topic(t.topic) for name, t in self.topology.tables.items()}

    @property
    def streams(self) -> dict[str, str]:
        return {name: self.topic(t.topic) for name, t in self.topology.streams.items()}

    @property
    def dlq(self) -> str:
        return self.topic(self.topology.dead_letter.topic)

    @property
    def outputs(self) -> dict[str, str]:
        """Every output topic by its name in ``export``: tables, streams, dead letters."""
        return {**self.tables, **self.streams, self.topology.dlq: self.dlq}

    def with_version(self, version: int) -> Names:
        return Names(self.topology, self.namespace, version)
