"""The backend interface declared once (kernels.backend): every backend implements it, a run
is checked when it is made, the backend is chosen once and passed down, and the codes of the
optimisers and nonlinearities have one home (the contract) that the config schema, the C
kernel and the Triton kernel follow."""

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from kernel_helpers import make_problem
from trainability import training
from trainability.contract.optimizers import MAX_HYPERPARAMETERS, OPTIMIZER_CODES, OPTIMIZERS
from trainability.contract.problem import DTYPES, NONLINEARITIES, NONLINEARITY_CODES, per_layer_learning_rates
from trainability.contract.statistics import STAT_FIELDS
from trainability.kernels import c_cpu, dispatch, reference, torch_batched, triton_gpu
from trainability.kernels.backend import TORCH_DTYPES, Backend, Run

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
KERNELS_DIR = ROOT / "workflow" / "trainability" / "kernels"
CPU = torch.device("cpu")
BACKENDS = [c_cpu, triton_gpu, torch_batched, reference]


def lr_grid(n=6):
    lrs, _ = per_layer_learning_rates(np.geomspace(0.05, 40.0, n), np.geomspace(0.1, 30.0, n), "lr_vs_lr", 2)
    return lrs


def schema_enums(name: str) -> list[list]:
    """The enums of every property called ``name`` in the config schema."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == name and isinstance(value, dict) and "enum" in value:
                    found.append(value["enum"])
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(SCHEMA.read_text()))
    return found


@pytest.mark.parametrize(
    "name,codes",
    [("optimizer", list(OPTIMIZERS)), ("nonlinearity", list(NONLINEARITIES)), ("dtype", list(DTYPES))],
)
def test_the_schema_allows_exactly_the_contracts_names(name, codes):
    assert schema_enums(name) == [codes]


def test_the_kernels_take_the_codes_from_the_contract():
    assert list(OPTIMIZER_CODES) == list(OPTIMIZERS) and sorted(OPTIMIZER_CODES.values()) == [0, 1, 2]
    assert list(NONLINEARITY_CODES) == list(NONLINEARITIES) and sorted(NONLINEARITY_CODES.values()) == [
        0,
        1,
        2,
    ]
    expected = {f"-DOPT_{n.upper()}={c}" for n, c in OPTIMIZER_CODES.items()}
    expected |= {f"-DPHI_{n.upper()}={c}" for n, c in NONLINEARITY_CODES.items()}
    expected.add(f"-DN_HYPER={MAX_HYPERPARAMETERS}")
    assert expected <= set(c_cpu.DEFINES)
    # The sources spell no code: C defines none (it refuses to build without the -D flags),
    # the Triton kernel compares with the contract's constexprs only.
    c_source = (KERNELS_DIR / "fused_cpu.c").read_text()
    assert not re.search(r"\b(PHI|OPT)_[A-Z]+\s*=", c_source)
    assert "!defined(OPT_GD)" in c_source and "!defined(PHI_TANH)" in c_source
    triton_text = (KERNELS_DIR / "triton_source.py").read_text()
    assert not re.search(r"\b(PHI|OPT)\s*==\s*\d", triton_text)
    if triton_gpu.triton_source is not None:
        source = triton_gpu.triton_source
        for name in OPTIMIZERS:
            assert getattr(source, f"OPT_{name.upper()}").value == OPTIMIZER_CODES[name]
        assert source.PHI_TANH.value == NONLINEARITY_CODES["tanh"]
        assert source.PHI_RELU.value == NONLINEARITY_CODES["relu"]
        assert source.N_HYPER.value == MAX_HYPERPARAMETERS
        consts = triton_gpu.constexprs(
            0, False, "every_step", "relu", 16, 16, triton_gpu.variant("float64"), "adam"
        )
        assert consts["PHI"] == NONLINEARITY_CODES["relu"] and consts["OPT"] == OPTIMIZER_CODES["adam"]


def test_one_dtype_map():
    # Every dtype of the contract but double-double, which no torch dtype holds.
    assert list(TORCH_DTYPES) == [d for d in DTYPES if d != "float64x2"]
    assert TORCH_DTYPES == {"float64": torch.float64, "float32": torch.float32}
    for module in (triton_gpu, torch_batched, reference):
        assert "getattr(torch" not in inspect.getsource(module)
        assert getattr(module, "TORCH_DTYPES", TORCH_DTYPES) is TORCH_DTYPES


@pytest.mark.parametrize("module", BACKENDS, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_every_backend_implements_the_interface(module):
    assert isinstance(module, Backend)
    assert isinstance(module.NAME, str)
    parameters = list(inspect.signature(module.train).parameters.values())
    assert parameters[0].name == "run"
    assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in parameters[1:]), parameters
    reason = module.unsupported(make_problem(), "float64", CPU)
    assert reason is None or isinstance(reason, str)


def test_a_run_is_checked_and_normalised_when_it_is_made():
    problem = make_problem()
    lrs = lr_grid()
    run = Run(problem, lrs.tolist(), list(range(6)), nonlinearity="tanh", steps=3, device="cpu", threads=0)
    assert run.learning_rates.dtype == np.float64 and run.learning_rates.flags.c_contiguous
    assert run.offsets.dtype == np.float64 and run.device == CPU and run.threads == 1 and run.pixels == 6
    np.testing.assert_array_equal(run.hyperparameters(), np.zeros((6, MAX_HYPERPARAMETERS)))
    with pytest.raises(AttributeError):
        run.steps = 4  # frozen
    bad = [
        (dict(nonlinearity="sigmoid"), "nonlinearity must be one of"),
        (dict(steps=0), "steps must be a positive integer"),
        (dict(dtype="float16"), "dtype must be one of"),
        (dict(offset_mode="sometimes"), "offset_mode must be one of"),
        (dict(optimizer="sgd"), "optimizer must be one of"),
        (dict(optimizer="momentum"), "takes the hyperparameters"),
    ]
    for change, message in bad:
        with pytest.raises(ValueError, match=message):
            Run(problem, lrs, **{"nonlinearity": "tanh", "steps": 3, **change})
    with pytest.raises(ValueError, match="learning_rates must have shape"):
        Run(problem, lrs[:, :1], nonlinearity="tanh", steps=3)


def test_a_backend_passed_down_trains_as_the_one_chosen_by_name():
    problem, lrs = make_problem(), lr_grid()
    kw = dict(nonlinearity="tanh", steps=12, device="cpu")
    by_name = dispatch.train_pixels(problem, lrs, kernel="torch", **kw)
    chosen = dispatch.choose_backend(problem, "float64", "cpu", "torch")
    assert chosen is torch_batched and dispatch.select_kernel(problem, "float64", "cpu", "torch") == "torch"
    passed = dispatch.train_pixels(problem, lrs, backend=chosen, **kw)
    for name in STAT_FIELDS:
        np.testing.assert_array_equal(passed[name], by_name[name], err_msg=name)
    # A backend given that cannot run the case is refused with the reason, as one named.
    with pytest.raises(dispatch.KernelUnsupported, match="float64 and float64x2"):
        dispatch.train_pixels(problem, lrs, backend=c_cpu, dtype="float32", **kw)


def test_the_experiment_chooses_its_backend_once_and_records_its_name():
    settings = {
        "model": {"width": 6, "depth": 2, "nonlinearity": "tanh"},
        "data": {"size": 9, "target_dim": 1, "seed": 0},
        "training": {"steps": 20, "batch": "full", "dtype": "float64"},
        "phase_space": {"kind": "lr_vs_lr", "offset_mode": "every_step"},
    }
    shared = training.shared_problem(settings)
    chosen = training.experiment_backend(shared, settings, CPU, "auto")
    expected = c_cpu if c_cpu.load_library() is not None else torch_batched
    assert chosen is expected
    assert training.kernel_name(chosen) == dispatch.select_kernel(shared, "float64", CPU) == chosen.NAME
    identity = training.arithmetic_identity(chosen, CPU, settings)
    assert identity == dispatch.arithmetic_identity(chosen.NAME, CPU, "float64", "gd")
    assert identity["kernel"] == chosen.NAME
    torch_backend = training.experiment_backend(shared, settings, CPU, "torch")
    assert training.arithmetic_identity(torch_backend, CPU, settings)["kernel"] == "torch"
    x, y = np.array([0.1, 1.0, 10.0]), np.array([0.2, 2.0, 20.0])
    passed = training.train_points(shared, settings, x, y, device=CPU, backend=chosen)
    named = training.train_points(shared, settings, x, y, device=CPU, kernel="auto")
    for name in STAT_FIELDS:
        np.testing.assert_array_equal(passed[name], named[name], err_msg=name)
    # The 1-D model trains in numpy: no backend, its own name and arithmetic.
    assert training.experiment_backend(None, settings, CPU, "auto") is None
    assert training.kernel_name(None) == training.ONE_DIMENSIONAL_KERNEL == "numpy"
    assert training.arithmetic_identity(None, CPU, settings)["kernel"] == "numpy"
