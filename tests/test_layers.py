"""The layers stay one-way: core <- engine <- {api, kafka} <- the command line.

``core`` is the contract and the compiled core's pure parts; ``spec`` says what the tables
mean from ``core`` alone; the engines build on ``core``; the API and the Kafka workers on
the engines, never on each other, except where ``api.server`` puts a Kafka host behind the
API when asked (the one place the two meet); the command-line modules sit on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "crm2stream"
#: layer -> the crm2stream modules and packages it may import
ALLOWED = {
    "core": {"core", "_native"},
    "spec": {"core", "spec"},
    "engine": {"core", "engine", "_native", "topology", "settings"},
    "api": {"core", "engine", "api", "topology", "settings", "_native"},
    "kafka": {"core", "engine", "kafka", "topology", "settings", "_native"},
}
#: module -> what it may import besides its layer's
EXCEPTIONS = {"api/server.py": {"kafka"}}


def imported(path: Path) -> set[str]:
    """The crm2stream modules a file imports (first component under the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "crm2stream" and len(parts) > 1:
                found.add(parts[1])
            elif parts[0] == "crm2stream" and isinstance(node, ast.ImportFrom):
                found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_what_is_below_it(layer: str) -> None:
    wrong = {}
    for path in sorted((PACKAGE / layer).glob("*.py")):
        relative = f"{layer}/{path.name}"
        extra = imported(path) - ALLOWED[layer] - EXCEPTIONS.get(relative, set())
        if extra:
            wrong[relative] = sorted(extra)
    assert not wrong, wrong
