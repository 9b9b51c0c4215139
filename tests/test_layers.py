"""The shape of the source tree: no import cycle among posebench's modules, the machine-facts layer imports nothing
above it, and no module grows past ~400 lines (split it by what it owns)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "posebench").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the posebench modules it imports (at the top or inside a function: a cycle is a cycle)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                edges |= {c for c in (node.module, *(f"{node.module}.{a.name}" for a in node.names)) if c in modules}
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_machine_facts_import_nothing_above_them() -> None:
    allowed = ("posebench", "posebench.errors")
    for name, edges in import_graph().items():
        if name.startswith("posebench.machine"):
            above = {e for e in edges if not e.startswith("posebench.machine") and e not in allowed}
            assert not above, f"{name} imports {sorted(above)}"


def test_no_module_over_400_lines() -> None:
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split by what each part owns: {long}"


def test_the_public_api_resolves_and_importing_posebench_stays_cheap() -> None:
    import subprocess
    import sys

    code = ("import sys, posebench; heavy = [m for m in ('torch', 'ultralytics', 'onnxruntime', 'openvino') "
            "if m in sys.modules]; assert not heavy, heavy; "
            "[getattr(posebench, name) for name in posebench.__all__]; print(len(posebench.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and int(out.stdout) >= 20, out.stderr
