"""The README and the pages of docs/: every link, image, anchor and file path in them points at
something that exists, and the README stays a front page that links every page.

What counts, in the prose of README.md and docs/*.md (fenced code blocks are examples, not
references, and are left out):

* links and images, ``[text](target)`` and ``![alt](target)``, other than http(s) and mailto:
  the target, relative to the page, is a file or directory; its ``#anchor``, where the target
  is a Markdown page (or the page itself), names one of that page's headings (GitHub's slug);
* paths in backticks that look like a repository file (a ``/`` and one of FILE_SUFFIXES; no
  ``<``, ``{`` or ``*``, which mark patterns): the file exists, relative to the repository,
  ``workflow/`` (``trainability/...``) or the package (``kernels/dispatch.py``). Outputs of a
  run (``results/...``, ``logs/...``) are not in the repository and are left out;
* dotted names of the package in backticks (``trainability.contract.grid.MAX_FRAMES``): every
  package or module named exists (a name after a package may also be one its ``__init__``
  defines).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "workflow" / "trainability"
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 300
# A path in backticks may be relative to the repository, to workflow/ or to the package.
PATH_BASES = (ROOT, ROOT / "workflow", PACKAGE)
FILE_SUFFIXES = (".py", ".smk", ".yaml", ".md", ".json", ".c", ".sh")
# Written by a run, git-ignored: named in the docs, never in the repository.
OUTPUT_ROOTS = ("results/", "logs/", "archives/", ".snakemake/", "report.")
NOT_A_PATH = ("<", "{", "*", "$", "~", "://")
EXTERNAL = ("http://", "https://", "mailto:")

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
# A code span: matching runs of backticks, not across a blank line.
CODE_SPAN = re.compile(r"(`+)((?:(?!\n[ \t]*\n).)+?)\1", re.S)
# [text](target) or ![alt](target), an optional "title" after the target.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
DOTTED = re.compile(r"trainability(?:\.[A-Za-z_]\w*)+")
EDGE_PUNCTUATION = "()[],;:.'\"!?"


def prose(text: str) -> str:
    """The text with fenced code blocks blanked (line numbers kept)."""
    lines, fence = [], None
    for line in text.split("\n"):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * 3
            lines.append("")
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            lines.append("")
        else:
            lines.append(line)
    return "\n".join(lines)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text (code spans, links and emphasis as rendered),
    lower case, punctuation other than '-' and '_' dropped, every space a '-'."""
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose(page.read_text(encoding="utf-8")).split("\n"):
        if match := HEADING.match(line):
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(text: str) -> list[tuple[int, str]]:
    """(line, target) of every link and image in the prose; those inside code spans are text."""
    body = prose(text)
    body = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), body)
    return [(line_of(body, m.start()), m.group(1)) for m in LINK.finditer(body)]


def code_tokens(text: str) -> list[tuple[int, str]]:
    """(line, word) of every whitespace-separated word of the prose's code spans, with the
    punctuation around it removed."""
    body = prose(text)
    found = []
    for match in CODE_SPAN.finditer(body):
        for word in match.group(2).split():
            word = word.strip(EDGE_PUNCTUATION)
            if word:
                found.append((line_of(body, match.start()), word))
    return found


def is_repository_path(word: str) -> bool:
    return (
        "/" in word
        and word.endswith(FILE_SUFFIXES)
        and not any(mark in word for mark in NOT_A_PATH)
        and not word.removeprefix("./").startswith(OUTPUT_ROOTS)
    )


def defined_names(init: Path) -> set[str]:
    """Top-level names a package's __init__ defines or imports."""
    names = set()
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def dotted_problem(name: str) -> str | None:
    """Why the dotted name does not resolve in the package, or None."""
    where = PACKAGE
    for part in name.split(".")[1:]:
        if (where / part / "__init__.py").is_file():
            where = where / part
        elif (where / f"{part}.py").is_file() or part in defined_names(where / "__init__.py"):
            return None  # a module, or a name the package defines: the rest are attributes
        else:
            return f"{where.relative_to(PACKAGE.parent)} has no module or name {part!r}"
    return None


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


# The helpers, on samples: each check can fail.


def test_slug_follows_github():
    assert slug("Zoom sequences: ten decades") == "zoom-sequences-ten-decades"
    assert slug("The paper's sequences") == "the-papers-sequences"
    assert slug("What is computed, exactly") == "what-is-computed-exactly"
    assert slug("`RESULTS_VERSION` and the *rerun*") == "results_version-and-the-rerun"
    assert slug("After a change: one rerun, or none") == "after-a-change-one-rerun-or-none"
    assert slug("[Linked](docs/x.md) heading") == "linked-heading"
    assert slug("GPU measurements: one command") != "gpu-measurements:-one-command"


def test_anchors_number_repeated_headings(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Run\n\n```bash\n# not a heading\n```\n\n## Run\n")
    assert anchors(page) == {"title", "run", "run-1"}


def test_links_and_code_paths_are_found_in_prose_only():
    sample = (
        "See [the zoom](docs/zoom.md#automatic-centres) and ![a strip](zoom/strip.png).\n"
        "Not `[code](nolink.md)`, nor [web](https://example.org) below:\n"
        "```\n[fenced](fenced.md) `fenced/path.py`\n```\n"
        "Run `.venv/bin/python docs/grid_hashes.py results | diff -\n"
        "docs/grid_hashes_default_run.json`, see `results/<experiment>/grid.h5` and (`config/zoom.yaml`).\n"
    )
    assert links(sample) == [
        (1, "docs/zoom.md#automatic-centres"),
        (1, "zoom/strip.png"),
        (2, "https://example.org"),
    ]
    paths = [(line, word) for line, word in code_tokens(sample) if is_repository_path(word)]
    assert paths == [
        (6, "docs/grid_hashes.py"),
        (6, "docs/grid_hashes_default_run.json"),
        (7, "config/zoom.yaml"),
    ]
    assert not is_repository_path("results/summary/dimension_table.md")
    assert not is_repository_path("workflow/rules/*.smk")


def test_dotted_names_resolve_in_the_package():
    assert dotted_problem("trainability.contract.grid.MAX_FRAMES") is None
    assert dotted_problem("trainability.RESULTS_VERSION") is None
    assert dotted_problem("trainability.grid.MAX_FRAMES") is not None  # moved to contract/
    assert dotted_problem("trainability.kernels.no_such_backend") is not None


# The pages.


def link_problems(page: Path) -> list[str]:
    """Links and images of the page whose file, or whose anchor, does not exist."""
    problems = []
    for line, target in links(page.read_text(encoding="utf-8")):
        if target.startswith(EXTERNAL):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            problems.append(f"line {line}: {target}: no such file or directory")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"line {line}: {target}: {resolved.name} has no heading #{anchor}")
    return problems


def path_problems(page: Path) -> list[str]:
    """File paths and dotted package names in the page's backticks that do not exist."""
    problems = []
    for line, word in code_tokens(page.read_text(encoding="utf-8")):
        name = word.removesuffix("()")
        if is_repository_path(word):
            if not any((base / word.removeprefix("./")).exists() for base in PATH_BASES):
                problems.append(f"line {line}: {word}: no such file")
        elif DOTTED.fullmatch(name) and (why := dotted_problem(name)):
            problems.append(f"line {line}: {word}: {why}")
    return problems


def test_the_page_checks_find_broken_references(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A section\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[fine](other.md#a-section) [self](#page) ![gone](gone.png)\n"
        "[wrong anchor](other.md#no-section) [dir](.)\n"
        "`config/zoom.yaml` `trainability/boundary/centre.py` `kernels/dispatch.py`\n"
        "`trainability.contract.grid` `trainability.RESULTS_VERSION` `trainability.training.train_points()`\n"
        "`trainability/centre.py` `docs/nothing.md` `trainability.io.write_h5`\n"
    )
    assert link_problems(page) == [
        "line 3: gone.png: no such file or directory",
        "line 4: other.md#no-section: other.md has no heading #no-section",
    ]
    assert [problem.split(":")[0] for problem in path_problems(page)] == ["line 7"] * 3


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_link_and_anchor_resolves(page):
    problems = link_problems(page)
    assert not problems, f"{page_id(page)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_file_path_in_backticks_exists(page):
    problems = path_problems(page)
    assert not problems, f"{page_id(page)}:\n" + "\n".join(problems)


def test_the_readme_is_a_front_page_linking_every_docs_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES, "README.md: move detail into docs/"
    linked = {(README.parent / target.partition("#")[0]).resolve() for _, target in links(text)}
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "docs/ has no pages"
    missing = [page_id(page) for page in pages if page.resolve() not in linked]
    assert not missing, f"README.md does not link {missing}"
