"""The layout carries the roadmap: a node's experiment is found by rule, experiments are leaves,
and no package imports itself round in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

from dlroadmap import registry

SRC = Path(registry.__file__).parent


def modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        rel = p.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = p
    return out


def test_every_implemented_node_finds_its_experiment_by_rule():
    for node in registry.load().nodes:
        if not node.implemented:
            continue
        module, _, attr = node.experiment.partition(":")
        topic = f"dlroadmap.experiments.{node.phase}.{node.topic}"
        assert module in (topic, f"{topic}.{attr}") and attr == node.id.split(".")[-1]
        exp = node.load_experiment()
        assert hasattr(exp, "Config") and callable(exp.run), node.id
        for f in node.code:
            assert (SRC / f).is_file(), f"{node.id}: code file {f} does not exist"
        assert node.module_file in node.code, f"{node.id}: its experiment module {node.module_file} is not listed in code"


def test_experiments_are_leaves():
    """Nothing imports an experiment module, except the registry loading it by name (importlib)."""
    mods = modules()
    for name, path in mods.items():
        for imp in _all_imports(path):
            if imp.startswith("dlroadmap.experiments.") and not imp.startswith("dlroadmap.experiments.base"):
                target = imp if imp in mods else imp.rsplit(".", 1)[0]
                if target in mods and target != "dlroadmap.experiments" and not target.endswith(("experiments.p1", "experiments.p2", "experiments.p3", "experiments.p4", "experiments.tools")):
                    raise AssertionError(f"{name} imports the experiment {target}: move what they share to models/, train/, data/ or evaluate/")
    for d in ("tests", "benchmarks"):
        for p in (SRC.parent.parent / d).glob("*.py"):
            bad = [i for i in _all_imports(p) if i.startswith("dlroadmap.experiments.") and not i.startswith("dlroadmap.experiments.base")]
            assert not bad, f"{p.name} imports {bad}"


def _all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for i in ast.walk(tree) if isinstance(i, ast.If) and "TYPE_CHECKING" in ast.unparse(i.test)
                   for b in i.body for n in ast.walk(b)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:  # imports for type hints only never run
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dlroadmap"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # `from dlroadmap.experiments.p2 import cnn`
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dlroadmap"))
    return found


def test_no_import_cycles_between_modules():
    mods = modules()
    graph = {}
    for name, path in mods.items():
        deps = set()
        for imp in _all_imports(path):   # lazy imports count too: a cycle through a function is still a cycle of design
            target = imp if imp in mods else imp.rsplit(".", 1)[0]
            if target in mods and target != name and not mods[target].name == "__init__.py":
                deps.add(target)
        graph[name] = deps
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for m in graph[n]:
            if state.get(m) == 1:
                cycle = stack[stack.index(m):] + [m] if m in stack else [n, m]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if m not in state:
                visit(m, stack + [m])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [n])


def test_no_source_file_is_over_600_lines():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 600}
    assert not long, f"split these by concern: {long}"
