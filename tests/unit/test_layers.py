"""The packages of `swp` import each other without cycles: each one builds on the ones below
it (the tensor math never imports the training loop, the loop never imports a pruner, infra
never imports training), so a part can be read, tested and replaced from the bottom up.
Imports under ``if TYPE_CHECKING:`` (annotations only) do not count."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import swp

ROOT = Path(swp.__file__).parent


def _package(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[0]


def _runtime_imports(tree: ast.AST):
    """swp modules imported at run time (module level or inside functions), not for typing."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("swp."):
            yield node.module.split(".")[1]
        elif isinstance(node, ast.Import):
            yield from (a.name.split(".")[1] for a in node.names if a.name.startswith("swp."))


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        here = _package(path)
        graph[here] |= {p for p in _runtime_imports(ast.parse(path.read_text())) if p != here}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else path + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_package_graph_has_no_cycle():
    cycle = _cycle(package_graph())
    assert cycle is None, "packages import each other in a circle: " + " -> ".join(cycle)


def test_the_low_layers_never_import_the_run():
    graph = package_graph()
    high = {"run", "launch", "cli"}
    for low in ("pruning", "training", "infra", "distributed", "models", "tasks", "data", "pruners"):
        assert not graph.get(low, set()) & high, f"swp.{low} imports {sorted(graph[low] & high)}"


def test_the_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
