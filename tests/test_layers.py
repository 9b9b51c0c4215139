"""The shape of the source tree: no import cycle among posebench's modules, every import goes down the layers of
docs/design.md, only the adapter imports Ultralytics, no module grows past ~400 lines (split it by what it owns) and
no function past 80."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 400
MAX_FUNCTION_LINES = 80

# docs/design.md's layers, lowest first (a module is in the layer of its longest matching prefix)
LAYERS = {
    1: ("posebench.errors", "posebench.machine"),
    2: ("posebench.models", "posebench.latency", "posebench.export", "posebench.runtimes",
        "posebench.ultralytics_adapter"),
    3: ("posebench.evaluate", "posebench.pipeline", "posebench.frame_source"),
    4: ("posebench.compress",),
    5: ("posebench.trial", "posebench.record", "posebench.what_ran", "posebench.results", "posebench.runner",
        "posebench.measure", "posebench.bench",
        "posebench.val", "posebench.stream", "posebench.study_file", "posebench.study", "posebench.cluster",
        "posebench.tune_plan", "posebench.tune_build", "posebench.tune", "posebench.pareto"),
    6: ("posebench.report", "posebench.tables", "posebench.cli", "posebench.commands", "posebench.__main__"),
}


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


def layer_of(module: str) -> int | None:
    best, length = None, -1
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = layer, len(prefix)
    return best


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(name, edge) for name, edges in graph.items() if name != "posebench" for edge in edges
            if edge != "posebench" and layer_of(edge) > layer_of(name)}


def test_every_module_has_a_layer() -> None:
    assert [name for name in _modules() if name != "posebench" and layer_of(name) is None] == []


def test_imports_go_down_the_layers() -> None:
    found = upward_imports(import_graph())
    assert not found, f"imports up a layer (docs/design.md): {sorted(found)}"


def test_the_layer_check_sees_an_upward_import() -> None:
    assert upward_imports({"posebench.export.fp32": {"posebench.evaluate.postprocess", "posebench.errors"}}) == {
        ("posebench.export.fp32", "posebench.evaluate.postprocess")}


def test_only_the_adapter_imports_ultralytics() -> None:
    found = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            roots = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(r.split(".")[0] == "ultralytics" for r in roots) and name != "posebench.ultralytics_adapter":
                found.append(f"{name}:{node.lineno}")
    assert not found, f"go through posebench.ultralytics_adapter: {found}"


def test_no_function_over_80_lines() -> None:
    long = {}
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = length
    assert not long, f"split by what each part does (at most {MAX_FUNCTION_LINES} lines): {long}"


# read through Record.latency_stats / scores / evaluation_* / artifact_facts / roofline / device
TYPED_PAYLOADS = {"latency", "accuracy", "evaluation", "artifact", "compute", "backend"}


def test_a_records_payloads_are_read_through_their_types():
    """Outside record.py nothing reads a record's payloads by key (`r.latency["p50_ms"]`,
    `(r.accuracy or {}).get("pose")`, `(r.artifact or {}).get("ops")`): `Record.latency_stats` (a LatencyStats),
    `Record.scores` (an Accuracy), `Record.evaluation_name` / `evaluation_mode`, `Record.artifact_facts`,
    `Record.roofline` and `Record.device` say what is there. A study's own `latency:` settings are not a payload."""

    def payload(node: ast.AST) -> ast.Attribute | None:
        if isinstance(node, ast.BoolOp):
            node = node.values[0]
        return node if isinstance(node, ast.Attribute) and node.attr in TYPED_PAYLOADS else None

    def aliases(tree: ast.AST) -> set[str]:  # a = r.accuracy; t, lat = r.identity, r.latency
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                pairs = [(node.targets[0], node.value)]
                if isinstance(node.targets[0], ast.Tuple) and isinstance(node.value, ast.Tuple):
                    pairs = list(zip(node.targets[0].elts, node.value.elts))
                names |= {t.id for t, v in pairs if isinstance(t, ast.Name) and payload(v) is not None
                          and not ast.unparse(payload(v)).startswith(("study.", "self.study."))}
        return names

    def read(node: ast.AST, names: set[str]) -> ast.AST | None:
        if isinstance(node, ast.Name) and node.id in names:
            return node
        attr = payload(node)
        return attr if attr is not None and not ast.unparse(attr).startswith(("study.", "self.study.")) else None

    found = []
    for name, path in _modules().items():
        if name == "posebench.record":
            continue
        tree = ast.parse(path.read_text())
        names = aliases(tree)
        for node in ast.walk(tree):
            hit = None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and \
                    isinstance(node.slice.value, str):
                hit = read(node.value, names)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
                hit = read(node.func.value, names)
            if hit is not None:
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "payloads read by key outside record.py: " + "; ".join(found)
