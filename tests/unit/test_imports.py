"""The package's architecture: subpackages by role, each importing only the layers below it;
no cycles, no imports hidden in functions.

Read from the source with ``ast`` (what the files say, not what happens to be
imported), plus one real import that must not bring in torch.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "workflow" / "trainability"
# Bottom to top. A module may import its own folder, the folders of lower layers and the
# package's face (trainability: __version__, RESULTS_VERSION); folders of one layer know
# nothing of each other. Each folder's __init__ says what it holds.
LAYERS = [
    {"contract"},  # what is computed: numerics, statistics, problem, optimisers, draws, axes
    {"boundary"},  # analysing a boundary from labels: scoring, box counting, estimators, centre
    {"kernels", "results", "config"},  # training backends; result files; the config
    {"training"},  # the one door from settings to kernels (trainability/training.py)
    {"figures"},  # pictures, videos, tables
    {"ops"},  # commands: cli, selftest, cluster, faults, resources
]
# The contract's third-party imports: numpy, and MPFR's correctly rounded functions.
CONTRACT_THIRD_PARTY = {"numpy", "gmpy2"}
BACKENDS = {
    "trainability.kernels.c_cpu",
    "trainability.kernels.triton_gpu",
    "trainability.kernels.torch_batched",
    "trainability.kernels.reference",
}
# What a backend's own helpers are: modules of its implementation, not other backends.
BACKEND_HELPERS = {
    "trainability.kernels.triton_gpu": {"trainability.kernels.triton_source"},
    "trainability.kernels.c_cpu": {"trainability.kernels.c_cpu_dd", "trainability.kernels.c_library"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def folder(name: str) -> str | None:
    """The architecture's folder of a module (training for trainability.training), or None for
    the package's face."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def layer(name: str) -> int:
    return next(i for i, folders in enumerate(LAYERS) if folder(name) in folders)


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


def test_every_module_lives_in_a_layer():
    assert {folder(name) for name in MODULES} - {None} == set().union(*LAYERS)
    for sub in set().union(*LAYERS) - {"training"}:
        init = PACKAGE / sub / "__init__.py"
        assert init.is_file() and len(ast.get_docstring(ast.parse(init.read_text())) or "") > 80, sub
    assert (PACKAGE / "kernels" / "fused_cpu.c").is_file()


@pytest.mark.parametrize("name", sorted(m for m in MODULES if folder(m)))
def test_a_module_imports_its_own_folder_and_lower_layers_only(name):
    for imported in package_imports(name):
        if folder(imported) in (None, folder(name)):
            continue
        assert layer(imported) < layer(name), (
            f"{name} imports {imported}: {folder(name)} is in layer {layer(name)} of {LAYERS}, "
            f"{folder(imported)} in layer {layer(imported)}"
        )


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_inside_a_function(name):
    tree = ast.parse(MODULES[name].read_text())
    hidden = []
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            hidden += [f"line {node.lineno}: {m}" for m, node in imports(func)]
    assert not hidden, f"{name} imports inside functions: {hidden}"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if folder(m) == "contract"))
def test_the_contract_imports_numpy_and_the_contract_only(name):
    tree = ast.parse(MODULES[name].read_text())
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for imported, node in imports(tree):
        top = imported.split(".")[0]
        ok = folder(imported) == "contract" if top == "trainability" else top in stdlib | CONTRACT_THIRD_PARTY
        assert ok, f"{name} line {node.lineno} imports {imported}: the contract allows numpy and itself"


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_backends_import_neither_the_dispatcher_nor_each_other(name):
    allowed = {m for m in MODULES if folder(m) == "contract"} | BACKEND_HELPERS.get(name, set())
    allowed |= {"trainability.kernels.backend"}  # the interface they implement
    wrong = package_imports(name) - allowed
    assert not wrong, f"{name} imports {sorted(wrong)}; backends may import the contract only"


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


def test_the_layer_check_can_fail():
    # A module of a lower layer importing a higher one, and two folders of one layer.
    assert layer("trainability.contract.grid") < layer("trainability.figures.zoom")
    assert layer("trainability.kernels.c_cpu") == layer("trainability.results.files")


def test_importing_the_contract_and_the_workflow_modules_does_not_import_torch():
    modules = [
        "trainability.contract.statistics",
        "trainability.contract.problem",
        "trainability.contract.grid",
        "trainability.boundary.box_counting",
        "trainability.boundary.scoring",
        "trainability.config",
        "trainability.results.integrity",
        "trainability.results.files",
        "trainability.kernels.quadratic_cosine",
    ]
    code = f"import sys; import {', '.join(modules)}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
