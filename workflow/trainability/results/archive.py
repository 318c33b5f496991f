"""Archives of one experiment's results: SHA-256 manifest, provenance, verification.

An archive is a ``.tar.gz`` with one top-level directory, the experiment's name::

    <experiment>/MANIFEST.sha256      sha256sum format, every other file of the archive
    <experiment>/provenance.json      git commit, resolved config, versions, devices, SLURM ids
    <experiment>/report.html          the Snakemake report of the experiment (when it could be made)
    <experiment>/results/<experiment>/...
    <experiment>/logs/<experiment>/...

After extraction, ``cd <experiment> && sha256sum -c MANIFEST.sha256`` checks it
with standard tools; :func:`verify` (``trainability verify-archive``) does the
same on the ``.tar.gz`` itself or on the extracted directory and names every
file that is modified, missing or unexpected.

Everything here only reads the files it archives.
"""

from __future__ import annotations

import contextlib
import hashlib
import io as _io
import os
import re
import tarfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = "MANIFEST.sha256"
PROVENANCE = "provenance.json"
REPORT = "report.html"
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- what to archive


def experiment_of(name: str, experiments: Mapping[str, dict]) -> dict:
    """The resolved experiment ``name``; ValueError naming the known ones otherwise."""
    if name not in experiments:
        raise ValueError(
            f"archives/{name}.tar.gz: no experiment {name!r} in the config "
            f"(experiments: {', '.join(experiments)})"
        )
    return experiments[name]


# --------------------------------------------------------------------------- hashing


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_stream(fh) -> str:
    digest = hashlib.sha256()
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def format_manifest(hashes: Mapping[str, str]) -> str:
    """``sha256sum`` format, sorted by path (paths relative to the archive's top directory)."""
    for name in hashes:
        _check_member_name(name)
    return "".join(f"{hashes[name]}  {name}\n" for name in sorted(hashes))


def parse_manifest(text: str) -> dict[str, str]:
    """{path: sha256} from ``sha256sum`` output; ValueError on a malformed line."""
    hashes = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if not match:
            raise ValueError(f"{MANIFEST} line {number} is not '<sha256>  <path>': {line[:80]!r}")
        digest, name = match.groups()
        if name in hashes:
            raise ValueError(f"{MANIFEST} lists {name} twice")
        hashes[name] = digest
    return hashes


def _check_member_name(name: str) -> None:
    parts = Path(name).parts
    if not parts or name.startswith("/") or ".." in parts or "\n" in name or "\\" in name:
        raise ValueError(f"unsafe path in archive: {name!r}")


# --------------------------------------------------------------------------- verification


@dataclass
class Verification:
    """Outcome of :func:`verify`: empty lists mean the archive matches its manifest."""

    checked: int = 0
    modified: list[tuple[str, str, str]] = field(default_factory=list)  # (path, expected, actual)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # unreadable manifest, duplicates, links...

    @property
    def ok(self) -> bool:
        return not (self.modified or self.missing or self.extra or self.errors)

    def lines(self) -> list[str]:
        out = [f"ERROR     {e}" for e in self.errors]
        out += [
            f"MODIFIED  {p}  (sha256 {exp[:16]}... in manifest, {act[:16]}... now)"
            for p, exp, act in self.modified
        ]
        out += [f"MISSING   {p}  (in manifest, not in archive)" for p in self.missing]
        out += [f"EXTRA     {p}  (in archive, not in manifest)" for p in self.extra]
        return out


def compare(expected: Mapping[str, str], actual: Mapping[str, str]) -> Verification:
    result = Verification(checked=len(actual))
    for name in sorted(expected):
        if name not in actual:
            result.missing.append(name)
        elif actual[name] != expected[name]:
            result.modified.append((name, expected[name], actual[name]))
    result.extra = sorted(set(actual) - set(expected))
    return result


def verify(path: str | Path) -> Verification:
    """Check a ``.tar.gz`` archive, or an extracted archive directory, against its manifest."""
    path = Path(path)
    if path.is_dir():
        return _verify_directory(path)
    return _verify_tarball(path)


def unsafe_member_reason(member: tarfile.TarInfo) -> str | None:
    """Why a member must not be in an archive of ours (extracting it could write outside
    its folder, or it is not plain data), or None. Checks the header only."""
    name = member.name
    parts = name.rstrip("/").split("/")
    if name.startswith("/"):
        return "absolute path"
    if ".." in parts:
        return "'..' in the path"
    if any(part in ("", ".") for part in parts) or "\\" in name or "\n" in name:
        return "not a plain relative path"
    if member.issym() or member.islnk():
        return f"a {'symbolic' if member.issym() else 'hard'} link (to {member.linkname!r})"
    if not (member.isfile() or member.isdir()):
        return "not a regular file or directory (device, FIFO or other special file)"
    return None


def _verify_tarball(path: Path) -> Verification:
    """Headers first: any unsafe member, or a file the manifest does not list, fails the
    archive before any file's content is read (nothing is ever extracted)."""
    try:
        with tarfile.open(path, "r:*") as tar:
            members = tar.getmembers()
            errors = [f"{m.name!r}: {reason}" for m in members if (reason := unsafe_member_reason(m))]
            tops = sorted({m.name.split("/")[0] for m in members})
            if len(tops) > 1:
                errors.append(f"more than one top directory: {tops}")
            if errors:
                return Verification(errors=errors)
            files = {"/".join(m.name.split("/")[1:]): m for m in members if m.isfile()}
            if len(files) != sum(m.isfile() for m in members):
                names = [m.name for m in members if m.isfile()]
                twice = sorted({n for n in names if names.count(n) > 1})
                return Verification(errors=[f"{n}: appears twice in the archive" for n in twice])
            if MANIFEST not in files:
                return Verification(errors=[f"no {MANIFEST} in the archive"])
            manifest_text = tar.extractfile(files.pop(MANIFEST)).read().decode("utf-8", "replace")
            try:
                listed = parse_manifest(manifest_text)
            except ValueError as err:
                return Verification(errors=[str(err)])
            if extra := sorted(set(files) - set(listed)):
                return Verification(checked=0, extra=extra)
            hashes = {name: sha256_stream(tar.extractfile(member)) for name, member in files.items()}
    except (OSError, tarfile.TarError, EOFError) as err:
        return Verification(errors=[f"cannot read {path}: {err}"])
    return _finish(manifest_text, hashes, [])


def _verify_directory(path: Path) -> Verification:
    """Walks the folder without following links; a link anywhere (file or folder) is an error."""
    if path.is_symlink():
        return Verification(errors=[f"{path}: a symbolic link, not the extracted folder"])
    if not (path / MANIFEST).is_file():
        subdirs = [p for p in path.iterdir() if p.is_dir() and (p / MANIFEST).is_file()]
        if len(subdirs) == 1:
            path = subdirs[0]
            if path.is_symlink():
                return Verification(errors=[f"{path}: a symbolic link, not the extracted folder"])
    manifest_path = path / MANIFEST
    if manifest_path.is_symlink():
        return Verification(errors=[f"{MANIFEST}: not a regular file (links are not allowed)"])
    manifest_text = manifest_path.read_text() if manifest_path.is_file() else None
    hashes, errors = {}, []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for dname in list(dirs):
            if (Path(root) / dname).is_symlink():
                errors.append(f"{(Path(root) / dname).relative_to(path).as_posix()}: a linked folder")
                dirs.remove(dname)
        for fname in sorted(files):
            full = Path(root) / fname
            name = full.relative_to(path).as_posix()
            if name == MANIFEST:
                continue
            if full.is_symlink() or not full.is_file():
                errors.append(f"{name}: not a regular file (links are not allowed)")
                continue
            hashes[name] = sha256_file(full)
    return _finish(manifest_text, hashes, errors)


def _finish(manifest_text, hashes, errors) -> Verification:
    if manifest_text is None:
        return Verification(checked=len(hashes), errors=errors + [f"no {MANIFEST} in the archive"])
    try:
        expected = parse_manifest(manifest_text)
    except ValueError as err:
        return Verification(checked=len(hashes), errors=errors + [str(err)])
    result = compare(expected, hashes)
    result.errors = errors + result.errors
    return result


# --------------------------------------------------------------------------- writing


def write_archive(out_path: str | Path, top: str, files: Mapping[str, str | Path | bytes]) -> dict[str, str]:
    """Write ``out_path`` (.tar.gz) holding ``files`` under ``top/``, plus the manifest.

    ``files`` maps archive paths (relative to ``top``) to a source file or to
    bytes. Sources are only read. The archive is written under a temporary
    name and renamed when complete. Returns the manifest ({path: sha256}).
    """
    out_path = Path(out_path)
    _check_member_name(top)
    if MANIFEST in files:
        raise ValueError(f"{MANIFEST} is written by write_archive itself")
    hashes = {}
    for name, source in files.items():
        _check_member_name(name)
        hashes[name] = (
            hashlib.sha256(source).hexdigest() if isinstance(source, bytes) else sha256_file(source)
        )
    manifest = format_manifest(hashes).encode()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    try:
        with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            _add_dir(tar, top)
            _add_bytes(tar, f"{top}/{MANIFEST}", manifest)
            for name in sorted(files):
                source = files[name]
                if isinstance(source, bytes):
                    _add_bytes(tar, f"{top}/{name}", source)
                    continue
                info = tar.gettarinfo(str(source), arcname=f"{top}/{name}")
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(source, "rb") as fh:
                    tar.addfile(info, fh)
        # The files may not change while being archived: re-hash what went in.
        check = _verify_tarball(tmp)
        if not check.ok:
            raise RuntimeError("files changed while being archived:\n" + "\n".join(check.lines()))
        os.replace(tmp, out_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return hashes


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(time.time())
    tar.addfile(info, _io.BytesIO(data))


def collect_files(workdir: str | Path, directories: Iterable[str]) -> dict[str, Path]:
    """{relative path: path} of every regular file under ``directories`` of ``workdir``.

    Hidden temporary files of interrupted writes (``.name.tmp-<pid>``) are skipped.
    """
    workdir = Path(workdir)
    files = {}
    for directory in directories:
        root = workdir / directory
        if not root.is_dir():
            continue
        for dirpath, dirs, names in os.walk(root):
            dirs.sort()
            for fname in sorted(names):
                full = Path(dirpath) / fname
                if re.match(r"\..*\.tmp-\d+", fname) or full.is_symlink() or not full.is_file():
                    continue
                files[full.relative_to(workdir).as_posix()] = full
    return files
