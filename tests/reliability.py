"""docs/reliability.md, written by the test run: one row per test marked `reliability`.

    @pytest.mark.reliability("Faults", "The target answers 500 for a share of records")
    def test_target_errors(observe):
        '''What the test does (the docstring's first paragraph is the "what was done" column).'''
        ...
        observe(f"{failed} records Failed with the reason, {sent} in the target once each")

Observations are what the test measured and asserted; the result column is the test's outcome in that run.
`make test` passes `--reliability-report=docs/reliability.md` (with "=": pytest must not take the path for a test path); a run of a subset writes nothing unless asked.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from pathlib import Path

import pytest

AREAS = ("Security", "Faults", "Bad input")  # the report's order
_rows: dict[str, dict] = {}


def pytest_addoption(parser):
    parser.addoption(
        "--reliability-report",
        metavar="PATH",
        default=None,
        help="write the table of the `reliability` tests of this run to PATH (Markdown)",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "reliability(area, scenario): a row of docs/reliability.md")


@pytest.fixture
def observe(request):
    """observe(text): one observation for this test's row of the reliability report."""
    row = _row(request.node)
    return row["observed"].append if row else (lambda text: None)


def _row(item) -> dict | None:
    marker = item.get_closest_marker("reliability")
    if marker is None:
        return None
    if item.nodeid not in _rows:
        area, scenario = marker.args
        if area not in AREAS:
            raise pytest.UsageError(f"{item.nodeid}: reliability area {area!r} is not one of {AREAS}")
        doc = inspect.getdoc(item.function) or ""
        _rows[item.nodeid] = {
            "area": area,
            "scenario": scenario,
            "done": " ".join(doc.split("\n\n")[0].split()),
            "observed": [],
            "result": "not run",
            "test": item.nodeid,
        }
    return _rows[item.nodeid]


def pytest_collection_modifyitems(items):
    for item in items:
        _row(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    row = _rows.get(item.nodeid)
    if row is not None and (report.when == "call" or report.outcome != "passed"):
        if report.outcome != "passed" or row["result"] in ("not run", "passed"):
            row["result"] = {"passed": "passed", "failed": "FAILED", "skipped": "skipped"}[report.outcome]
    return report


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    lines = [
        "# Reliability",
        "",
        "Written by the test run (`make test`, from `tests/reliability.py`): every row is a test marked",
        "`reliability`; *observed* is what that test measured and asserted, *result* its outcome in the run.",
        "Do not edit by hand.",
        "",
    ]
    for area in AREAS:
        rows = sorted((r for r in _rows.values() if r["area"] == area), key=lambda r: r["test"])
        if not rows:
            continue
        lines += [f"## {area}", "", "| scenario | what was done | observed | result | test |", "|---|---|---|---|---|"]
        lines += [
            f"| {_cell(r['scenario'])} | {_cell(r['done'])} | {_cell('; '.join(r['observed']) or '-')} | "
            f"{r['result']} | `{r['test']}` |"
            for r in rows
        ]
        lines.append("")
    return "\n".join(lines)


def pytest_sessionfinish(session):
    target = session.config.getoption("--reliability-report")
    if not target or not _rows:
        return
    path = Path(target)
    if not path.is_absolute():
        path = Path(session.config.rootpath) / path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(render())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)  # never half-written
