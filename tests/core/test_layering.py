"""The package's layering (docs/architecture.md): which package may import which, and no
import cycle between modules.

Every `import mlora_tf...` / `from mlora_tf... import` in the package's source counts,
at module level or inside a function (a lazy import is an arrow all the same).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "mlora_tf"

# Bottom to top; a module may import its own layer and the layers below it.
LAYERS = (
    ("api", "io", "runtime"),
    ("layers",),
    ("config", "original_config"),
    ("data",),
    ("models",),
    ("training",),
    ("export",),
    ("runs",),
    ("cli",),
)
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set[str]:
    """The `mlora_tf` modules `path` imports (a `from pkg import name` of a submodule
    counts as that submodule)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("mlora_tf"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlora_tf"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists() or (
                    PACKAGE.parent / sub.replace(".", "/") / "__init__.py"
                ).exists():
                    out.add(sub)
                else:
                    out.add(node.module)
    return out


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
IMPORTS = {name: _imports(path) for name, path in MODULES.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_top_level_module_and_package_has_a_layer():
    tops = {_layer(m) for m in MODULES} - {None}
    assert tops - set(RANK) == set(), f"put these in LAYERS and docs/architecture.md: {sorted(tops - set(RANK))}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) is not None))
def test_no_module_imports_from_a_layer_above_it(module):
    own = RANK[_layer(module)]
    upward = sorted(
        target for target in IMPORTS[module] if _layer(target) is not None and RANK[_layer(target)] > own
    )
    assert not upward, f"{module} (layer {_layer(module)}) imports from above: {upward}"


def test_the_package_root_imports_only_layers_and_the_import_time_log_filter():
    # `mlora_tf/__init__` registers the layers with Keras and, before TensorFlow's first
    # import, runs the programs' start-up log filter, which itself imports nothing of ours.
    assert IMPORTS["mlora_tf"] <= {"mlora_tf.layers", "mlora_tf.cli.tf_log"}
    assert IMPORTS["mlora_tf.cli.tf_log"] == set()


def _import_graph():
    """Module -> the modules it imports, resolved to modules of the package."""
    graph = {}
    for module, targets in IMPORTS.items():
        resolved = set()
        for t in targets:
            while t not in MODULES and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in MODULES and t != module:
                resolved.add(t)
        graph[module] = resolved
    return graph


def test_no_import_cycle_between_modules():
    graph = _import_graph()
    # A package's `__init__` re-exporting its modules is not a cycle of theirs: drop the
    # arrows from a module to the `__init__` of a package that contains it.
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
