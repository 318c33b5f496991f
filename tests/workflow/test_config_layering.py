"""Config layering: which file defines the experiments, `base`, `all_experiments`.

Unit tests of trainability.config.layered_config, then real Snakemake dry runs:
a --configfile alone defines the experiments; the defaults load without one.
"""

import copy
import math
import subprocess
from collections import Counter

import pytest
import yaml

from trainability.config import (
    ConfigError,
    base_files,
    deep_merge,
    layered_config,
    load_config,
    validate_config,
)
from trainability.results import files
from workflow_helpers import (
    JOB_HEADER,
    REPO,
    WILDCARDS,
    planned_jobs,
    prepare_workdir,
    snakemake,
    snakemake_command,
)

# The six conditions of Figure 1, as config/config.yaml names them.
PAPER_NAMES = {"deep_linear", "relu", "tanh_dataset1", "tanh_minibatch", "tanh", "paraminit"}
# ... and the default run's seventh experiment, the 1-D control.
DEFAULT_NAMES = PAPER_NAMES | {"liu_control"}

EXP = {
    "model": {"width": 4, "depth": 2, "nonlinearity": "tanh"},
    "data": {"size": "params", "seed": 0},
    "training": {"steps": 10},
    "phase_space": {"kind": "lr_vs_lr", "x": [-1, 1], "y": [-1, 1]},
    "grid": {"resolution": 8, "shard_size": 16},
}


def write_yaml(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def problems_of(config, workdir):
    with pytest.raises(ConfigError) as info:
        layered_config(config, workdir)
    return "\n".join(info.value.problems)


# --- deep_merge ---


def test_deep_merge_merges_dicts_and_replaces_everything_else():
    lower = {"a": {"x": 1, "y": [1, 2, 3], "z": {"k": 1}}, "b": 1, "c": {"d": 1}}
    upper = {"a": {"y": [9], "z": {"m": 2}}, "b": {"now": "a dict"}, "c": 5}
    before = copy.deepcopy((lower, upper))
    merged = deep_merge(lower, upper)
    assert merged == {"a": {"x": 1, "y": [9], "z": {"k": 1, "m": 2}}, "b": {"now": "a dict"}, "c": 5}
    merged["a"]["x"] = merged["a"]["y"][0] = merged["b"]["now"] = 0
    assert (lower, upper) == before  # inputs untouched, also through the result


# --- layered_config: order ---


def test_without_layering_keys_the_config_is_unchanged(tmp_path):
    config = {"kernel": "torch", "experiments": {"e": EXP}}
    assert layered_config(config, tmp_path) == config


def test_including_file_is_merged_over_its_base(tmp_path):
    write_yaml(tmp_path / "base.yaml", {"kernel": "torch", "experiments": {"e": EXP, "other": EXP}})
    config = {"base": "base.yaml", "experiments": {"e": {"training": {"steps": 99}}}}
    layered = layered_config(config, tmp_path)
    assert layered["kernel"] == "torch"
    assert layered["experiments"]["e"]["training"] == {"steps": 99}
    assert layered["experiments"]["e"]["model"] == EXP["model"]  # merged, not replaced
    assert layered["experiments"]["other"] == EXP
    assert "base" not in layered and "all_experiments" not in layered


def test_lists_replace(tmp_path):
    write_yaml(tmp_path / "base.yaml", {"experiments": {"e": EXP}, "summary": {"experiments": ["e", "f"]}})
    config = {
        "base": "base.yaml",
        "experiments": {"e": {"phase_space": {"x": [-3, 0]}}},
        "summary": {"experiments": ["e"]},
    }
    layered = layered_config(config, tmp_path)
    assert layered["experiments"]["e"]["phase_space"] == {"kind": "lr_vs_lr", "x": [-3, 0], "y": [-1, 1]}
    assert layered["summary"]["experiments"] == ["e"]


def test_later_base_wins_over_earlier(tmp_path):
    write_yaml(tmp_path / "one.yaml", {"kernel": "torch", "experiments": {"e": EXP}})
    write_yaml(tmp_path / "two.yaml", {"kernel": "fused", "experiments": {"e": {"grid": {"resolution": 4}}}})
    layered = layered_config({"base": ["one.yaml", "two.yaml"]}, tmp_path)
    assert layered["kernel"] == "fused"
    assert layered["experiments"]["e"]["grid"] == {"resolution": 4, "shard_size": 16}
    layered = layered_config({"base": ["two.yaml", "one.yaml"]}, tmp_path)
    assert layered["kernel"] == "torch" and layered["experiments"]["e"]["grid"] == EXP["grid"]


def test_bases_load_recursively_relative_to_the_working_directory(tmp_path):
    # sub/mid.yaml names its base relative to the working directory, not to sub/.
    write_yaml(tmp_path / "sub" / "root.yaml", {"kernel": "torch", "experiments": {"e": EXP}})
    write_yaml(tmp_path / "sub" / "mid.yaml", {"base": "sub/root.yaml", "kernel": "fused"})
    layered = layered_config({"base": "sub/mid.yaml"}, tmp_path)
    assert layered == {"kernel": "fused", "experiments": {"e": EXP}}
    # Provenance: every file the config was built from, lowest first.
    assert base_files({"base": "sub/mid.yaml"}, tmp_path) == ["sub/root.yaml", "sub/mid.yaml"]


def test_all_experiments_goes_over_every_experiment_after_the_base(tmp_path):
    write_yaml(tmp_path / "base.yaml", {"experiments": {"a": EXP, "b": EXP}})
    config = {
        "base": "base.yaml",
        "experiments": {"b": {"grid": {"resolution": 32}}, "c": EXP},
        "all_experiments": {"grid": {"shard_size": 7}, "training": {"dtype": "float32"}},
    }
    layered = layered_config(config, tmp_path)
    for name, resolution in (("a", 8), ("b", 32), ("c", 8)):
        exp = layered["experiments"][name]
        assert exp["grid"] == {"resolution": resolution, "shard_size": 7}, name
        assert exp["training"] == {"steps": 10, "dtype": "float32"}, name
    # all_experiments also wins over the file's own experiment fields.
    config["experiments"]["b"]["grid"]["shard_size"] = 3
    assert layered_config(config, tmp_path)["experiments"]["b"]["grid"]["shard_size"] == 7


def test_all_experiments_of_a_base_stays_with_that_base(tmp_path):
    # A base file means what it means alone: its all_experiments covers its own
    # experiments, not ones that a file including it adds.
    write_yaml(
        tmp_path / "big.yaml", {"experiments": {"a": EXP}, "all_experiments": {"grid": {"resolution": 64}}}
    )
    layered = layered_config({"base": "big.yaml", "experiments": {"new": EXP}}, tmp_path)
    assert layered["experiments"]["a"]["grid"]["resolution"] == 64
    assert layered["experiments"]["new"]["grid"]["resolution"] == 8


def test_command_line_overrides_keep_the_last_word(tmp_path):
    config = {"experiments": {"e": EXP}, "all_experiments": {"title": "from all_experiments"}}
    overrides = {"kernel": "torch", "experiments": {"e": {"title": "from --config"}}}
    layered = layered_config(deep_merge(config, overrides), tmp_path, overrides=overrides)
    assert layered["experiments"]["e"]["title"] == "from --config" and layered["kernel"] == "torch"


def test_diamond_is_not_a_cycle(tmp_path):
    write_yaml(tmp_path / "common.yaml", {"experiments": {"e": EXP}})
    write_yaml(tmp_path / "left.yaml", {"base": "common.yaml", "kernel": "torch"})
    write_yaml(tmp_path / "right.yaml", {"base": "common.yaml"})
    assert layered_config({"base": ["left.yaml", "right.yaml"]}, tmp_path)["kernel"] == "torch"
    assert base_files({"base": ["left.yaml", "right.yaml"]}, tmp_path) == [
        "common.yaml",
        "left.yaml",
        "right.yaml",
    ]


# --- layered_config: errors ---


def test_cycle_is_refused_with_its_chain(tmp_path):
    write_yaml(tmp_path / "a.yaml", {"base": "b.yaml"})
    write_yaml(tmp_path / "b.yaml", {"base": "c.yaml"})
    write_yaml(tmp_path / "c.yaml", {"base": "a.yaml"})
    assert "base: cycle of base files: a.yaml -> b.yaml -> c.yaml -> a.yaml" in problems_of(
        {"base": "a.yaml"}, tmp_path
    )


def test_file_that_is_its_own_base_is_a_cycle(tmp_path):
    write_yaml(tmp_path / "self.yaml", {"base": "./self.yaml"})
    message = problems_of({"base": "self.yaml"}, tmp_path)
    assert "base: cycle of base files: self.yaml -> ./self.yaml" in message


def test_missing_base_names_base_and_the_path(tmp_path):
    message = problems_of({"base": "config/nowhere.yaml", "experiments": {"e": EXP}}, tmp_path)
    assert message.startswith("base: cannot read config/nowhere.yaml")
    assert str(tmp_path / "config" / "nowhere.yaml") in message and "No such file" in message


def test_missing_base_of_a_base_names_the_including_file(tmp_path):
    write_yaml(tmp_path / "mid.yaml", {"base": "gone.yaml"})
    assert "base (in mid.yaml): cannot read gone.yaml" in problems_of({"base": "mid.yaml"}, tmp_path)


def test_unreadable_base_files(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    assert "base: cannot read dir.yaml" in problems_of({"base": "dir.yaml"}, tmp_path)
    (tmp_path / "broken.yaml").write_text("experiments: [unclosed\n")
    assert "base: broken.yaml is not valid YAML" in problems_of({"base": "broken.yaml"}, tmp_path)
    write_yaml(tmp_path / "list.yaml", ["not", "a", "mapping"])
    assert "base: list.yaml holds a list, expected a mapping" in problems_of({"base": "list.yaml"}, tmp_path)


def test_empty_base_file_adds_nothing(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    layered = layered_config({"base": "empty.yaml", "experiments": {"e": EXP}}, tmp_path)
    assert layered == {"experiments": {"e": EXP}}


@pytest.mark.parametrize("value", [3, None, {"path": "a.yaml"}, ["a.yaml", 4], [""]])
def test_bad_type_of_base(tmp_path, value):
    message = problems_of({"base": value}, tmp_path)
    assert message.startswith(f"base: {value!r} is not valid; allowed: a path or a list of paths")


@pytest.mark.parametrize("value", [["grid"], "grid", 4096, None])
def test_bad_type_of_all_experiments(tmp_path, value):
    message = problems_of({"experiments": {"e": EXP}, "all_experiments": value}, tmp_path)
    assert message.startswith(f"all_experiments: {value!r} is not valid; allowed: a mapping of experiment")


@pytest.mark.parametrize(
    "common,expected",
    [
        (
            {"grid": {"resolutoin": 4096}},
            "all_experiments.grid: Additional properties are not allowed ('resolutoin' was unexpected)",
        ),
        (
            {"grid": {"resolution": "4096"}},
            "all_experiments.grid.resolution: '4096' is not of type 'integer'",
        ),
        (
            {"colour": "red"},
            "all_experiments: Additional properties are not allowed ('colour' was unexpected)",
        ),
        ({"training": {"batch": "half"}}, "all_experiments.training.batch: 'half' is not valid; allowed:"),
    ],
)
def test_bad_field_of_all_experiments_is_named_once(tmp_path, common, expected):
    config = {"experiments": {"a": EXP, "b": EXP}, "all_experiments": common}
    with pytest.raises(ConfigError) as info:
        layered_config(config, tmp_path)
    assert len(info.value.problems) == 1 and expected in info.value.problems[0]


def test_bad_all_experiments_of_a_base_names_the_file(tmp_path):
    write_yaml(
        tmp_path / "b.yaml", {"experiments": {"e": EXP}, "all_experiments": {"grid": {"resolution": 1.5}}}
    )
    assert "all_experiments (in b.yaml).grid.resolution: 1.5 is not of type 'integer'" in problems_of(
        {"base": "b.yaml"}, tmp_path
    )


def test_validate_config_refuses_a_config_that_was_not_layered(tmp_path):
    with pytest.raises(ConfigError) as info:
        validate_config({"base": "x.yaml", "experiments": {"e": EXP}}, tmp_path)
    assert "base: not applied" in str(info.value)


# --- the shipped configs ---


def test_figure1_config_is_the_default_experiments_at_4096_squared():
    defaults = load_config(REPO / "config/config.yaml")
    expected_raw = copy.deepcopy(defaults)
    del expected_raw["experiments"]["liu_control"]  # figure1.yaml leaves the 1-D control out
    for exp in expected_raw["experiments"].values():
        exp["grid"] = {"resolution": 4096, "shard_size": 1048576}
    expected = validate_config(expected_raw, REPO)
    paper = layered_config(load_config(REPO / "config/figure1.yaml"), REPO)
    assert validate_config(paper, REPO) == expected
    assert set(expected) == PAPER_NAMES
    assert paper["kernel"] == defaults["kernel"]


def test_paper_config_is_the_default_experiments_as_deep_zoom_sequences():
    defaults = validate_config(load_config(REPO / "config/config.yaml"), REPO)
    paper = validate_config(layered_config(load_config(REPO / "config/paper.yaml"), REPO), REPO)
    assert set(paper) == PAPER_NAMES
    del defaults["liu_control"]  # left out (experiments: {liu_control: null})
    for name, exp in paper.items():
        # The same training, from the author's starting window, at 4096^2, to the float64 limit.
        for section in ("model", "data", "training"):
            assert exp[section] == defaults[name][section]
        assert exp["phase_space"]["kind"] == defaults[name]["phase_space"]["kind"]
        assert (exp["phase_space"]["x"], exp["phase_space"]["y"]) == ([-3, 6], [-3, 6])
        assert exp["grid"]["resolution"] == 4096
        assert exp["zoom"]["centre"] == "auto"
        # Frame k is 9 / 2^k decades wide; float64 at 4096 px stops near 3.6e-12 (2 ulps of 3.75).
        assert exp["zoom"]["frames"] == exp["zoom"]["max_frames"]
        assert 40 <= exp["zoom"]["frames"] <= 44


@pytest.mark.parametrize("path", ["config/paper.yaml", "config/figure1.yaml"])
def test_paper_configs_repeat_no_window(path):
    text = (REPO / path).read_text()
    raw = yaml.safe_load(text)
    # No experiment of its own: only the default run's 1-D control is left out.
    assert raw["experiments"] == {"liu_control": None} and raw["base"] == "config/config.yaml"
    for exp in load_config(REPO / "config/config.yaml")["experiments"].values():
        for bound in exp["phase_space"]["x"] + exp["phase_space"]["y"]:
            assert repr(bound) not in text


# --- real Snakemake plans ---


def with_defaults(workdir):
    """A working directory that holds the shipped config/ and resources/, as a checkout does."""
    for name in ("config", "resources"):
        (workdir / name).symlink_to(REPO / name, target_is_directory=True)
    return workdir


def plan(workdir, *args):
    """Dry-run jobs [(rule, wildcards)] of Snakemake run with exactly these arguments."""
    cmd = snakemake_command(workdir, "--cores", "1", "--dry-run", *args, configfile=False)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-6000:]
    jobs = []
    for line in text.splitlines():
        if header := JOB_HEADER.match(line.strip()):
            jobs.append((header.group(1), {}))
        elif (wildcards := WILDCARDS.match(line)) and jobs:
            jobs[-1][1].update(item.partition("=")[::2] for item in wildcards.group(1).split(", "))
    assert jobs, text[-4000:]
    return jobs


def shards_per_experiment(jobs):
    return Counter(wc["experiment"] for rule, wc in jobs if rule == "train_shard")


def expected_shards(config):
    return {
        name: math.ceil(exp["grid"]["resolution"] ** 2 / exp["grid"]["shard_size"])
        for name, exp in config["experiments"].items()
    }


@pytest.mark.slow
def test_configfile_alone_defines_the_experiments(tmp_path):
    """config/config.yaml exists in the working directory, yet only the given file's experiment runs."""
    config = {"experiments": {"only_me": EXP}}
    workdir = with_defaults(prepare_workdir(tmp_path, config))
    jobs = planned_jobs(workdir)
    assert shards_per_experiment(jobs) == {"only_me": 4}  # 8 x 8 pixels, 16 per shard
    assert {wc["experiment"] for _, wc in jobs if "experiment" in wc} == {"only_me"}


@pytest.mark.slow
def test_without_configfile_the_defaults_run(tmp_path):
    jobs = plan(with_defaults(tmp_path))
    assert set(shards_per_experiment(jobs)) == DEFAULT_NAMES
    assert shards_per_experiment(jobs) == expected_shards(load_config(REPO / "config/config.yaml"))


@pytest.mark.slow
def test_figure1_config_plans_the_six_experiments_at_4096_squared(tmp_path):
    jobs = plan(with_defaults(tmp_path), "--configfile", "config/figure1.yaml")
    # 4096^2 pixels in shards of 2^20 pixels: 16 training jobs per experiment.
    assert shards_per_experiment(jobs) == {name: 16 for name in PAPER_NAMES}


@pytest.mark.slow
def test_configfile_with_base_adds_to_the_defaults(tmp_path):
    config = {"base": "config/config.yaml", "experiments": {"extra": EXP}}
    workdir = with_defaults(prepare_workdir(tmp_path, config))
    assert set(shards_per_experiment(planned_jobs(workdir))) == DEFAULT_NAMES | {"extra"}


@pytest.mark.slow
def test_missing_base_stops_snakemake_before_any_job(tmp_path):
    workdir = prepare_workdir(tmp_path, {"base": "nowhere.yaml", "experiments": {"e": EXP}})
    result = snakemake(workdir, "--dry-run", check=False)
    assert result.returncode != 0
    assert "base: cannot read nowhere.yaml" in result.stdout + result.stderr


@pytest.mark.slow
def test_jobs_run_with_the_layered_config(tmp_path):
    """A real run: what the jobs compute follows the base file and all_experiments."""
    write_yaml(tmp_path / "base.yaml", {"experiments": {"small": EXP}})
    config = {"base": "base.yaml", "all_experiments": {"grid": {"resolution": 6, "shard_size": 20}}}
    workdir = prepare_workdir(tmp_path, config)
    snakemake(workdir, "results/small/frame0/grid.h5")
    _, attrs = files.read_h5(workdir / "results/small/frame0/grid.h5", [])
    assert (attrs["resolution"], attrs["shard_size"], attrs["n_shards"]) == (6, 20, 2)


@pytest.mark.slow
def test_a_cluster_job_sees_the_same_experiments(tmp_path):
    """A job as a cluster executor starts it: a fresh Snakemake given the same --configfiles.

    The experiment is named like a default one (tanh): had the job loaded config/config.yaml
    too, the default tanh (16 wide, the author's init file) would be merged into this one.
    """
    write_yaml(tmp_path / "base.yaml", {"experiments": {"tanh": EXP}})
    config = {"base": "base.yaml", "all_experiments": {"grid": {"resolution": 6, "shard_size": 20}}}
    workdir = with_defaults(prepare_workdir(tmp_path, config))
    # As a cluster job is started: --configfiles (plural), remote mode, one target job.
    cmd = snakemake_command(
        workdir,
        *("--target-jobs", "train_shard:experiment=tanh,frame=0,shard=1", "--allowed-rules", "train_shard"),
        *("--cores", "1", "--configfiles", str(workdir / "config.yaml"), "--mode", "remote"),
        configfile=False,
        profile=None,
    )
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    _, attrs = files.read_h5(workdir / "results/tanh/frame0/shards/shard1.h5", [])
    # 6 x 6 pixels in shards of 20: the second shard holds pixels 20..35.
    assert (attrs["first_pixel"], attrs["n_pixels"]) == (20, 16)
    assert attrs["training"]["model"]["width"] == 4
