"""topology.yaml is read by the code: names, keys and checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from crm2stream.core.tables import STATE_TABLES
from crm2stream.topology import TOPOLOGY_FILE, load_topology


def test_topology_names_the_core_tables_and_streams() -> None:
    topology = load_topology()
    assert tuple(topology.tables) == STATE_TABLES
    assert set(topology.streams) == {"score-changes", "marketing-triggers"}
    assert topology.dlq == "dlq"
    assert topology.exportable[-1] == "dlq"
    assert topology.input.key == "actor"


def test_the_packaged_file_is_the_top_level_one() -> None:
    top = Path(__file__).resolve().parent.parent / "topology.yaml"
    assert TOPOLOGY_FILE.resolve() == top.resolve()


def test_a_topology_that_disagrees_with_the_core_is_refused(tmp_path: Path) -> None:
    text = TOPOLOGY_FILE.read_text().replace("  rfm:", "  recency:")
    bad = tmp_path / "topology.yaml"
    bad.write_text(text)
    with pytest.raises(ValueError, match="state tables"):
        load_topology(bad)
    bad.write_text(TOPOLOGY_FILE.read_text().replace("version: 1", "version: 1\ncolour: red"))
    with pytest.raises(ValidationError):
        load_topology(bad)
