"""The package's shape: imports flow one way, down the stages of the data flow, with no cycle.

Every `import` counts, also those inside functions and under `TYPE_CHECKING`: a cycle through a deferred
import still ties two modules together for a reader and for a refactor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sentikit"

# The stages in the order data flows; a module may import its own stage and any stage before it.
STAGES = ["errors", "atomic", "checkpoint", "data", "nn", "training", "gates", "bundle", "explain", "compare", "app", "cli"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """Every sentikit module `path` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in MODULES and name.startswith("sentikit."))
    return found


GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def stage_of(module: str) -> int:
    return STAGES.index(module.split(".")[1])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a list of modules (the first repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_through_three_modules_and_none_in_a_chain():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_an_import_inside_a_function_counts(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from sentikit.cli import main\n")
    assert imports_of(source) == {"sentikit.cli"}


def test_the_package_has_no_import_cycle():
    assert find_cycle(GRAPH) is None, "import cycle: " + " -> ".join(find_cycle(GRAPH))


def test_every_module_belongs_to_a_stage():
    assert [m for m in MODULES if m != "sentikit" and m.split(".")[1] not in STAGES + ["__main__"]] == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m not in ("sentikit", "sentikit.__main__")))
def test_imports_flow_down_the_stages(module):
    later = sorted(other for other in GRAPH[module] if other != "sentikit.__main__" and stage_of(other) > stage_of(module))
    assert later == [], f"{module} (stage {STAGES[stage_of(module)]}) imports later stages: {later}"


def test_training_code_does_not_import_explanation_code():
    training = [m for m in MODULES if m.split(".")[1:2] in (["nn"], ["training"], ["data"])]
    leaks = {m: sorted(o for o in GRAPH[m] if o.split(".")[1] in ("gates", "explain")) for m in training}
    assert {m: o for m, o in leaks.items() if o} == {}
