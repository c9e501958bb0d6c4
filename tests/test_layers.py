"""The layers of docs/design.md#layers, checked on the source: no import cycles among ptycho_core
modules (function-level imports included, so a lazy import cannot hide one), the pipeline below the
`--nproc` launcher, the CLI on the harness's public API only, and `failure_reason` below both."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules(package_dir: Path) -> dict[str, Path]:
    out = {}
    for path in package_dir.rglob("*.py"):
        if "templates" in path.parts:  # plugin templates are copied, never imported
            continue
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(module: str, path: Path, known: dict) -> set[str]:
    """Every module `module` imports anywhere in its source (a name imported from a package is the
    submodule when one has that name, else the package)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text())
    typing_only = {  # `if TYPE_CHECKING:` imports are never executed
        id(n) for block in ast.walk(tree) if _is_type_checking(block) for n in ast.walk(block) if n is not block
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


def _graph(package_dir: Path, known: dict | None = None) -> dict[str, set[str]]:
    mods = _modules(package_dir)
    known = mods if known is None else known
    return {m: _imports(m, p, known) for m, p in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_ptycho_core():
    graph = _graph(ROOT / "ptycho_core")
    assert len(graph) > 50 and "ptycho_core.testing.conformance.base" in graph
    assert _cycles(graph) == []


def test_pipeline_does_not_import_the_launcher():
    graph = _graph(ROOT / "ptycho_core")
    assert "ptycho_core.parallel" not in graph["ptycho_core.pipeline"]
    assert "ptycho_core.ranks" in graph["ptycho_core.pipeline"]


def test_failure_reason_lives_below_the_harness_and_the_cli():
    graph = _graph(ROOT / "ptycho_core")
    assert "ptycho_core.harness.worker" not in graph["ptycho_core.harness.score"]
    assert "ptycho_core.errors" in graph["ptycho_core.harness.score"]


def test_cli_uses_the_public_harness_api():
    core = _modules(ROOT / "ptycho_core")
    cli = _graph(ROOT / "cli" / "ptycho_cli", known={**core, **_modules(ROOT / "cli" / "ptycho_cli")})
    internal = {
        (m, t)
        for m, targets in cli.items()
        for t in targets
        if t.startswith("ptycho_core.harness.") and t != "ptycho_core.harness.events"
    }
    assert internal == set()


def _function_level_imports(path: Path) -> list[ast.stmt]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out += [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return out


def test_every_import_inside_a_function_says_why():
    """Function-level imports remain only for a reason (the import budget, an optional extra, a
    framework), given in a `# lazy:` comment on the line or the line above."""
    unexplained = []
    for path in _modules(ROOT / "ptycho_core").values():
        lines = path.read_text().splitlines()
        for node in _function_level_imports(path):
            here, above = lines[node.lineno - 1], lines[node.lineno - 2]
            if "# lazy:" not in here and "# lazy:" not in above:
                unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert unexplained == []


#: The layers of docs/design.md#layers, bottom first (a module belongs to the layer that names it
#: or a package above it; `ptycho_core` itself is only its __init__); a module imports only its own
#: layer or lower ones.
LAYERS = (
    (
        "ptycho_core",
        "ptycho_core.errors",
        "ptycho_core.ranks",
        "ptycho_core.registry",
        "ptycho_core.hookspecs",
        "ptycho_core.plugins",
        "ptycho_core.default_plugins",
        "ptycho_core.generator",
        "ptycho_core.rundir",
        "ptycho_core.metric_registry",
        "ptycho_core.host",
        "ptycho_core.settings",
        "ptycho_core.simconfig",
        "ptycho_core.splits",
        "ptycho_core.torch.settings",
        "ptycho_core.limits",
    ),
    (
        "ptycho_core.physics",
        "ptycho_core.data",
        "ptycho_core.preprocess",
        "ptycho_core.training",
        "ptycho_core.io",
        "ptycho_core.stitch",
        "ptycho_core.gauge",
        "ptycho_core.metrics",
        "ptycho_core.agreement",
        "ptycho_core.simulate",
        "ptycho_core.parallel",
    ),
    ("ptycho_core.pipeline", "ptycho_core.torch", "ptycho_core.refine", "ptycho_core.quality_time"),
    ("ptycho_core.harness", "ptycho_core.compare", "ptycho_core.report", "ptycho_core.results"),
    ("ptycho_core.testing",),
)


def _layer(module: str) -> int:
    for depth, names in enumerate(LAYERS):
        if any(module == n or (n != "ptycho_core" and module.startswith(n + ".")) for n in names):
            return depth
    raise AssertionError(f"{module} is in no layer of docs/design.md#layers (add it to LAYERS and the doc)")


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{m} -> {t}" for m, targets in _graph(ROOT / "ptycho_core").items() for t in targets if _layer(t) > _layer(m)
    ]
    assert upward == []
