"""Archives: `snakemake archives/<experiment>.tar.gz` and `trainability verify-archive`."""

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from trainability.ops.cli import main as cli_main
from trainability.results import archive, provenance
from workflow_helpers import TINY_CONFIG, planned_jobs, prepare_workdir, snakemake

NAME = "tanh_small"
ARCHIVE = f"archives/{NAME}.tar.gz"


def tree_state(root: Path) -> dict:
    """{path: (sha256, mtime_ns, size)} of every file under root."""
    return {
        p.relative_to(root).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
            p.stat().st_size,
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    """One finished experiment, then its archive."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"] = {NAME: config["experiments"][NAME]}
    workdir = prepare_workdir(tmp_path_factory.mktemp("archive"), config)
    snakemake(workdir)
    # Another experiment's files (a name with the same prefix) must stay out.
    for other in (f"results/{NAME}_other/frame0/grid.h5", f"logs/{NAME}_other/merge.log"):
        (workdir / other).parent.mkdir(parents=True)
        (workdir / other).write_text("not this experiment\n")
    results_before = tree_state(workdir / "results")
    logs_before = tree_state(workdir / "logs")
    # Archiving plans nothing but the archive itself.
    assert planned_jobs(workdir, ARCHIVE) == [("archive", {"experiment": NAME})]
    run = snakemake(workdir, ARCHIVE)
    return workdir, results_before, logs_before, run


@pytest.mark.slow
def test_archiving_changes_no_result(archived):
    workdir, results_before, logs_before, _ = archived
    assert tree_state(workdir / "results") == results_before
    logs_after = tree_state(workdir / "logs")
    assert {k: v for k, v in logs_after.items() if not k.startswith("archives/")} == logs_before


@pytest.mark.slow
def test_archive_holds_every_file_of_the_experiment_and_its_manifest(archived):
    workdir = archived[0]
    with tarfile.open(workdir / ARCHIVE) as tar:
        members = {m.name: m for m in tar.getmembers()}
        manifest = archive.parse_manifest(tar.extractfile(f"{NAME}/{archive.MANIFEST}").read().decode())
        provenance = json.loads(tar.extractfile(f"{NAME}/{archive.PROVENANCE}").read())
        report = tar.extractfile(f"{NAME}/{archive.REPORT}").read()
        contents = {
            name[len(NAME) + 1 :]: tar.extractfile(m).read() for name, m in members.items() if m.isfile()
        }
    assert all(name == NAME or name.startswith(f"{NAME}/") for name in members)
    expected = {
        p.relative_to(workdir).as_posix()
        for d in (f"results/{NAME}", f"logs/{NAME}")
        for p in (workdir / d).rglob("*")
        if p.is_file()
    }
    assert expected >= {
        f"results/{NAME}/frame0/grid.h5",
        f"results/{NAME}/figures/landscape.png",
        f"logs/{NAME}/frame0/shards/shard0.log",
    }
    assert not any("/shards/shard" in name and name.endswith(".h5") for name in expected), "temporary"
    assert set(manifest) == expected | {archive.PROVENANCE, archive.REPORT}
    assert not any(f"{NAME}_other" in name for name in manifest)
    for name in expected:  # the archived bytes are the files on disk
        assert contents[name] == (workdir / name).read_bytes(), name
    for name, digest in manifest.items():
        assert hashlib.sha256(contents[name]).hexdigest() == digest, name

    # Provenance.
    git = provenance["git"]
    assert git.get("commit") is None or re.fullmatch(r"[0-9a-f]{40}", git["commit"])
    if git.get("commit"):
        assert isinstance(git["dirty"], bool)
    assert provenance["config"]["resolved"]["grid"] == {"resolution": 12, "shard_size": 40}
    assert provenance["config"]["as_given"]["title"] == "tanh small"
    assert {"torch", "numpy", "h5py", "snakemake", "trainability"} <= set(
        provenance["versions"]["at_archiving"]
    )
    assert provenance["versions"]["frames"]["frame0"]["torch"]
    assert provenance["devices"]["frames"]["frame0"]
    # The shards were removed after the merge; the grid recorded what computed each.
    assert provenance["devices"]["shards"] == []
    (source,) = provenance["devices"]["shard_sources"]["frame0"]
    assert source["shards"] == [0, 1, 2, 3] and source["arithmetic"]["device"] == "cpu"
    assert source["device"]["device"] == "cpu"
    # Ran locally: every output is known and has no SLURM job.
    by_output = provenance["slurm_job_ids"]["by_output"]
    assert by_output[f"results/{NAME}/frame0/grid.h5"] == []
    assert provenance["file_count"] == len(expected)
    # The Snakemake report of this experiment.
    assert b"<html" in report[:2000].lower() and b"landscape.png" in report


@pytest.mark.slow
def test_verify_accepts_the_archive_and_standard_tools_agree(archived, tmp_path):
    workdir = archived[0]
    assert archive.verify(workdir / ARCHIVE).ok
    cli = Path(sys.executable).with_name("trainability")
    out = subprocess.run([str(cli), "verify-archive", str(workdir / ARCHIVE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("OK")
    with tarfile.open(workdir / ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    assert archive.verify(tmp_path / NAME).ok and archive.verify(tmp_path).ok
    if shutil.which("sha256sum"):
        check = subprocess.run(
            ["sha256sum", "--quiet", "-c", archive.MANIFEST],
            cwd=tmp_path / NAME,
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr


def rewrite(src: Path, dst: Path, change=None, drop=None, add=None):
    """A copy of an archive with one member changed, dropped, or added."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        for member in tin.getmembers():
            data = tin.extractfile(member).read() if member.isfile() else None
            if member.name == drop:
                continue
            if member.name == change:
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
                member.size = len(data)
            tout.addfile(member, io.BytesIO(data) if data is not None else None)
        if add:
            info = tarfile.TarInfo(add)
            info.size = 5
            tout.addfile(info, io.BytesIO(b"extra"))
    return dst


@pytest.mark.slow
def test_verify_names_the_wrong_file(archived, tmp_path, capsys):
    src = archived[0] / ARCHIVE
    grid = f"results/{NAME}/frame0/grid.h5"
    dropped = f"results/{NAME}/frame0/scores.h5"
    cases = {
        "modified": (rewrite(src, tmp_path / "m.tar.gz", change=f"{NAME}/{grid}"), "MODIFIED", grid),
        "missing": (rewrite(src, tmp_path / "d.tar.gz", drop=f"{NAME}/{dropped}"), "MISSING", dropped),
        "extra": (
            rewrite(src, tmp_path / "e.tar.gz", add=f"{NAME}/results/{NAME}/notes.txt"),
            "EXTRA",
            f"results/{NAME}/notes.txt",
        ),
    }
    for case, (path, word, name) in cases.items():
        result = archive.verify(path)
        assert not result.ok, case
        wrong = {
            "modified": [m[0] for m in result.modified],
            "missing": result.missing,
            "extra": result.extra,
        }
        assert wrong == {k: ([name] if k == case else []) for k in wrong}, case
        assert cli_main(["verify-archive", str(path)]) == 1
        out = capsys.readouterr().out
        assert f"{word}" in out and name in out, out
    # A modified manifest line is caught too (the file no longer matches it).
    with tarfile.open(src) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    (tmp_path / "x" / NAME / "results" / NAME / "dimension.json").write_text("{}\n")
    result = archive.verify(tmp_path / "x" / NAME)
    assert [m[0] for m in result.modified] == [f"results/{NAME}/dimension.json"]
    (tmp_path / "x" / NAME / archive.MANIFEST).unlink()
    assert "no MANIFEST.sha256" in archive.verify(tmp_path / "x" / NAME).errors[0]
    assert cli_main(["verify-archive", str(tmp_path / "nonexistent.tar.gz")]) == 1


@pytest.mark.slow
def test_an_unfinished_experiment_is_not_archived(tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"] = {NAME: config["experiments"][NAME]}
    workdir = prepare_workdir(tmp_path / "unfinished", config)
    result = snakemake(workdir, ARCHIVE, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"experiment {NAME} is not finished, nothing archived" in output
    assert f"results/{NAME}/frame0/grid.h5" in output
    assert not (workdir / "results").exists() and not (workdir / ARCHIVE).exists()
    result = snakemake(workdir, "archives/nosuch.tar.gz", check=False)
    assert result.returncode != 0 and "no experiment 'nosuch' in the config" in result.stdout + result.stderr


def test_manifest_round_trip_and_unsafe_names():
    hashes = {"b/c.h5": "0" * 64, "a.txt": "f" * 64}
    text = archive.format_manifest(hashes)
    assert text.splitlines()[0].endswith("  a.txt")
    assert archive.parse_manifest(text) == hashes
    for bad in ("../x", "/etc/passwd", "a/../../b"):
        with pytest.raises(ValueError):
            archive.format_manifest({bad: "0" * 64})
    with pytest.raises(ValueError):
        archive.parse_manifest("not a manifest line\n")


def test_provenance_is_built_from_what_the_adapter_read():
    cpu, gpu = {"device": "cpu", "processor": "x86"}, {"device": "cuda", "gpu": "H200"}
    shards = {
        "results/e/frame0/shards/shard0.h5": {"device": cpu},
        "results/e/frame0/shards/shard1.h5": {"device": gpu},
        "results/e/frame0/shards/shard2.h5": {"device": dict(reversed(cpu.items()))},  # same device
        "results/e/frame1/shards/shard0.h5": {"error": "unreadable"},
    }
    grids = {
        1: {
            "versions": {"torch": "2.5"},
            "devices": ["cpu x86"],
            "slurm_job_ids": [],
            "window_log10": [[0, 1]] * 2,
        },
        0: {
            "versions": {"torch": "2.4"},
            "devices": ["cuda H200"],
            "slurm_job_ids": ["17"],
            "window_log10": [[0, 2]] * 2,
        },
    }
    git = {"commit": "0" * 40, "dirty": False, "changed_files": [], "untracked_files": []}
    record = provenance.provenance(
        "e",
        {"results/e/dimension.json": 10, "logs/e/merge.log": 5},
        grids,
        shards,
        resolved={"grid": {"resolution": 4}},
        as_given={"title": "e"},
        config_files=("c.yaml",),
        versions={"trainability": "0.1.0"},
        git=git,
        slurm_by_output={"results/e/dimension.json": []},
        archived_on={"host": "h", "workdir": "/w"},
        created_utc="2026-01-01T00:00:00+00:00",
        quarantined=[
            "results/e/frame0/shards/shard3.h5.corrupt-2",
            "results/e/frame0/shards/shard1.h5.corrupt-1",
        ],
    )
    assert record["experiment"] == "e" and record["created_utc"].startswith("2026")
    assert record["archived_on"] == {"host": "h", "workdir": "/w"} and record["git"] == git
    assert record["config"] == {
        "resolved": {"grid": {"resolution": 4}},
        "as_given": {"title": "e"},
        "config_files": ["c.yaml"],
    }
    assert record["versions"] == {
        "at_archiving": {"trainability": "0.1.0"},
        "frames": {"frame0": {"torch": "2.4"}, "frame1": {"torch": "2.5"}},
    }
    assert list(record["versions"]["frames"]) == ["frame0", "frame1"]
    assert record["devices"]["frames"] == {"frame0": ["cuda H200"], "frame1": ["cpu x86"]}
    assert record["devices"]["shards"] == [
        {"device": cpu, "files": ["results/e/frame0/shards/shard0.h5", "results/e/frame0/shards/shard2.h5"]},
        {"device": gpu, "files": ["results/e/frame0/shards/shard1.h5"]},
        {"device": None, "files": ["results/e/frame1/shards/shard0.h5"]},
    ]
    assert record["slurm_job_ids"]["by_output"] == {"results/e/dimension.json": []}
    assert record["slurm_job_ids"]["merge_jobs_by_frame"] == {"frame0": ["17"], "frame1": []}
    assert record["windows_log10"] == {"frame0": [[0, 2]] * 2, "frame1": [[0, 1]] * 2}
    assert record["quarantined_files_left_out"] == [
        "results/e/frame0/shards/shard1.h5.corrupt-1",
        "results/e/frame0/shards/shard3.h5.corrupt-2",
    ]
    assert record["report"] == archive.REPORT
    assert (record["file_count"], record["total_bytes"]) == (2, 15)
    assert json.loads(provenance.to_json_bytes(record)) == record


def crafted_archive(path, members, manifest_names=()):
    """A .tar.gz whose members are (name, kind, payload/linkname), with a manifest that lists
    ``manifest_names`` (as an attacker would, so that the names look expected)."""
    manifest = "".join(f"{hashlib.sha256(b'x').hexdigest()}  {name}\n" for name in manifest_names)
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        entries = [("top/" + archive.MANIFEST, "file", manifest.encode()), *members]
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "device": tarfile.CHRTYPE}[
                kind
            ]
            info.linkname = payload
            tar.addfile(info)
    return path


@pytest.mark.parametrize(
    "members,listed,reason",
    [
        ([("/evil", "file", b"x")], ["/evil"], "absolute path"),
        ([("top/f1/../../evil", "file", b"x")], ["f1/../../evil"], "'..' in the path"),
        ([("../evil", "file", b"x")], ["evil"], "'..' in the path"),
        ([("top/link", "symlink", "/etc/passwd")], ["link"], "symbolic link"),
        ([("top/hard", "hardlink", "top/MANIFEST.sha256")], ["hard"], "hard link"),
        ([("top/dev", "device", "")], ["dev"], "device"),
        ([("top/./x", "file", b"x")], ["x"], "not a plain relative path"),
        ([("other/x", "file", b"x")], ["x"], "more than one top directory"),
    ],
)
def test_verify_rejects_crafted_archives_before_reading_them(tmp_path, members, listed, reason):
    tarball = crafted_archive(tmp_path / "crafted.tar.gz", members, listed)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = archive.verify(tarball)
    assert not result.ok and any(reason in e for e in result.errors), result.errors
    assert result.checked == 0  # no file's content was hashed
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written anywhere
    assert not Path("/evil").exists()
    # The command says FAILED with the reason and exits 1.
    out = subprocess.run(
        [sys.executable, "-m", "trainability.ops.cli", "verify-archive", str(tarball)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "FAILED" in out.stdout and reason in out.stdout


def test_verify_rejects_files_the_manifest_does_not_list(tmp_path):
    tarball = crafted_archive(tmp_path / "extra.tar.gz", [("top/unlisted.h5", "file", b"x")], [])
    result = archive.verify(tarball)
    assert result.extra == ["unlisted.h5"] and result.checked == 0


def test_a_linked_folder_in_an_extracted_archive_is_an_error(archived, tmp_path):
    workdir = archived[0]
    with tarfile.open(workdir / ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    top = tmp_path / NAME
    assert archive.verify(top).ok
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not part of the archive")
    (top / "linked").symlink_to(outside, target_is_directory=True)
    result = archive.verify(top)
    assert not result.ok and any("linked: a linked folder" in e for e in result.errors), result.errors
