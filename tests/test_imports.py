"""The package's import direction: a numpy-only contract at the bottom, kernels above it,
files/config/figures on top; no cycles, no imports hidden in functions.

Read from the source with ``ast`` (what the files say, not what happens to be
imported), plus one real import that must not bring in torch.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "workflow" / "trainability"
# The contract: numpy and the standard library only.
LAYER0 = {
    "trainability",
    "trainability.statistics",
    "trainability.problem",
    "trainability.grid",
    "trainability.dimension",
    "trainability.scoring",
    "trainability.arithmetic",
    "trainability.agreement",
    "trainability.centre",
    "trainability.pilots",
    "trainability.optimizers",
    "trainability.randomness",
    "trainability.phase_space",
    "trainability.one_dimensional",
    "trainability.line_dimension",
    "trainability.uncertainty",
    "trainability.model_checks",
    "trainability.numerics",
}
# gmpy2: MPFR's correctly rounded elementary functions (trainability.numerics).
THIRD_PARTY_IN_LAYER0 = {"numpy", "gmpy2"}
BACKENDS = {
    "trainability.kernels.c_cpu",
    "trainability.kernels.triton_gpu",
    "trainability.kernels.torch_batched",
    "trainability.kernels.reference",
}
BACKEND_HELPERS = {"trainability.kernels.triton_gpu": {"trainability.kernels.triton_source"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    """(imported module, node) for every import in the tree; `from pkg import sub` names pkg.sub."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub if sub in MODULES else node.module, node))
    return found


def package_imports(name: str) -> set[str]:
    tree = ast.parse(MODULES[name].read_text())
    return {m for m, _ in imports(tree) if m.split(".")[0] == "trainability" and m != name}


def test_the_package_has_the_expected_modules():
    assert {"trainability.statistics", "trainability.kernels", "trainability.kernels.c_cpu"} <= set(MODULES)
    assert (PACKAGE / "kernels" / "fused_cpu.c").is_file()


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_inside_a_function(name):
    tree = ast.parse(MODULES[name].read_text())
    hidden = []
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            hidden += [f"line {node.lineno}: {m}" for m, node in imports(func)]
    assert not hidden, f"{name} imports inside functions: {hidden}"


@pytest.mark.parametrize("name", sorted(LAYER0))
def test_the_contract_imports_numpy_and_the_contract_only(name):
    tree = ast.parse(MODULES[name].read_text())
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for imported, node in imports(tree):
        top = imported.split(".")[0]
        ok = imported in LAYER0 or top in stdlib or top in THIRD_PARTY_IN_LAYER0
        assert ok, f"{name} line {node.lineno} imports {imported}: layer 0 allows numpy and layer 0 only"


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_backends_import_neither_the_dispatcher_nor_each_other(name):
    allowed = LAYER0 | BACKEND_HELPERS.get(name, set())
    wrong = package_imports(name) - allowed
    assert not wrong, f"{name} imports {sorted(wrong)}; backends may import layer 0 only"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the import graph as a path, or None. Importing a submodule also runs
    its package's ``__init__``: that edge (child -> parent package) is Python's, not a cycle."""
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name, [name])):
            return cycle
    return None


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "p.x": {"p"}, "p": {"p.x"}}) is None


def test_there_is_no_import_cycle():
    graph = {name: package_imports(name) & set(MODULES) for name in MODULES}
    assert find_cycle(graph) is None, "import cycle: " + " -> ".join(find_cycle(graph))


def test_the_contract_does_not_import_the_kernels():
    for name in LAYER0:
        assert not {m for m in package_imports(name) if m.startswith("trainability.kernels")}, name


def test_importing_the_contract_and_the_workflow_modules_does_not_import_torch():
    code = (
        "import sys; import trainability.statistics, trainability.problem, trainability.grid, "
        "trainability.dimension, trainability.scoring, trainability.config, trainability.integrity, "
        "trainability.io; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
