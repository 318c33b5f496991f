"""The ``trainability`` command (``pyproject.toml``: ``trainability = "trainability.cli:main"``).

    trainability verify-archive archives/tanh.tar.gz [more archives or extracted directories]

Exit status: 0 when every archive matches its manifest, 1 when a file is
modified, missing or unexpected (each one is named), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import sys

from trainability import __version__, archive


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
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
