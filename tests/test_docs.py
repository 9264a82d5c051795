"""The documentation stays true: the spec reference is the generator's output, links and repository paths lead to
files that exist, and every `flowlink ...` command line in a code block parses with the real command's parser."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from flowlink.cli import parser

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
TOP = ("flowlink", "plugins", "dag_factory", "dags", "bench", "tests", "examples", "docs")
REPO_PATH = re.compile(r"(?<![\w/.:~$-])((?:" + "|".join(TOP) + r")/[\w./-]*)")
SHELL_OPERATORS = {"|", "||", "&", "&&", ";", ">", ">>", "2>", "<"}


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", text, re.M)}


def test_reference_is_what_the_generator_writes_from_the_schema():
    done = subprocess.run(
        [sys.executable, "-m", "flowlink.docs_reference"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    assert "## `touchpoints[].load.match`" in done.stdout
    assert (REPO / "docs" / "reference.md").read_text(encoding="utf-8") == done.stdout, (
        "docs/reference.md is stale: .venv/bin/python -m flowlink.docs_reference > docs/reference.md"
    )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(doc: Path):
    text = FENCE.sub("", doc.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert not broken, f"{doc.name}: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_repository_path_named_exists(doc: Path):
    missing = sorted(
        {p for p in REPO_PATH.findall(doc.read_text(encoding="utf-8")) if not (REPO / p.rstrip(".")).exists()}
    )
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


def _command_lines(doc: Path) -> list[str]:
    """Each `flowlink ...` command in the doc's code blocks, from `flowlink` to the end of its shell command."""
    found = []
    for block in FENCE.findall(doc.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            if not re.search(r"(^|\s)flowlink\s", line):
                continue
            words = shlex.split(line, comments=True)
            if "flowlink" not in words:
                continue  # only mentioned in a comment
            words = words[words.index("flowlink") :]
            end = next((i for i, w in enumerate(words) if w in SHELL_OPERATORS), len(words))
            found.append(shlex.join(words[:end]))
    return found


def test_the_readme_tour_has_its_commands_checked():
    lines = _command_lines(REPO / "README.md")
    assert len(lines) >= 10, lines


def _subcommands(p) -> dict[str, dict]:
    """command -> its actions (or {}), from the parser's subparsers."""
    found: dict[str, dict] = {}
    for action in p._subparsers._group_actions if p._subparsers else []:
        for name, sub in action.choices.items():
            found[name] = _subcommands(sub)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_flowlink_command_in_inline_code_exists(doc: Path):
    """`flowlink env token ...` in running text: the command and its action are real (arguments may be placeholders)."""
    commands = _subcommands(parser())
    wrong = []
    for span in re.findall(r"`(flowlink [^`]+)`", FENCE.sub("", doc.read_text(encoding="utf-8"))):
        words = span.split()
        actions = commands.get(words[1])
        if actions is None and words[1] not in ("--help", "COMMAND"):
            wrong.append(span)
        elif actions and len(words) > 2 and not words[2].startswith("-") and words[2] not in actions:
            wrong.append(span)
    assert not wrong, f"{doc.name}: {wrong}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_flowlink_command_in_a_code_block_parses(doc: Path, capsys):
    wrong = []
    for line in _command_lines(doc):
        try:
            parser().parse_args(shlex.split(line)[1:])
        except SystemExit:
            wrong.append(f"{line}: {capsys.readouterr().err.strip().splitlines()[-1]}")
    assert not wrong, f"{doc.name}: {wrong}"
