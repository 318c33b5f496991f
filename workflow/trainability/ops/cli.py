"""The ``trainability`` command (``pyproject.toml``: ``trainability = "trainability.ops.cli:main"``).

    trainability verify-archive archives/tanh.tar.gz [more archives or extracted directories]
    trainability selftest [--device cuda] [--json selftest.json]

verify-archive exits 0 when every archive matches its manifest, 1 when a file
is modified, missing or unexpected (each one is named). selftest
(``trainability.ops.selftest``) exits 0 when every kernel on the device agrees with
the CPU reference, 1 when one does not. Both exit 2 on bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainability import __version__
from trainability.ops import selftest
from trainability.results import archive


def _verify_archive(args) -> int:
    status = 0
    for path in args.paths:
        result = archive.verify(path)
        if result.ok:
            print(f"OK        {path}: {result.checked} files match {archive.MANIFEST}")
            continue
        status = 1
        print(f"FAILED    {path}:")
        for line in result.lines():
            print(f"  {line}")
    return status


def _progress(line: str) -> None:
    print(line, flush=True)


def _selftest(args) -> int:
    try:
        report = selftest.run(
            args.device,
            args.resolution,
            args.steps,
            init_file=args.init_file,
            progress=lambda s: print(s, flush=True),
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"trainability selftest: {err}", file=sys.stderr)
        return 2
    print(report.table())
    if args.json:
        selftest.write_json(report, args.json)
        print(f"written: {args.json}")
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="trainability",
        description="Tools around the trainability-landscape workflow (run it with snakemake).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    verify = sub.add_parser(
        "verify-archive",
        help="check an archive from `snakemake archives/<experiment>.tar.gz` against its SHA-256 manifest",
        description="Check each archive (.tar.gz, or the directory it was extracted to) against "
        "its MANIFEST.sha256 and name every file that is modified, missing or not listed.",
    )
    verify.add_argument("paths", nargs="+", metavar="PATH")
    verify.set_defaults(func=_verify_archive)
    test = sub.add_parser(
        "selftest",
        help="check every kernel on this device against the CPU reference and time it (about a minute)",
        description="Train a small grid across the trainability boundary of the author's problem with "
        "every kernel and dtype the device supports, check each against the CPU float64 reference by "
        "the benchmark's agreement criteria, and print pixel-steps/s and the estimated time of a "
        "4096x4096-pixel, 1000-step frame. Exit status 1 when a kernel disagrees.",
    )
    test.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda if visible)")
    test.add_argument("--resolution", type=int, default=16, help="pixels per side of the agreement grid (16)")
    test.add_argument("--steps", type=int, default=500, help="training steps (500)")
    test.add_argument("--init-file", type=Path, default=selftest.INIT_FILE, help=argparse.SUPPRESS)
    test.add_argument("--json", type=Path, help="also write the report as JSON here")
    test.set_defaults(func=_selftest)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
