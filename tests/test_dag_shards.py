"""The workflows spread over DAG files by a stable shard of their name (flowlink/dag_files.py, flowlink.live.shard):
each file builds and reads only its shard, every DAG loads exactly once, broken files are reported by their shard's
file, a task's parse builds only its DAG, and `flowlink dags write` moves a folder off the two-file layout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import flowlink.live as live_module
from flowlink import publish, settings
from flowlink.dag_files import OWN, SHARDS, import_errors_file, workflows_file
from flowlink.live import shard
from tests.airflow_helpers import OWN_DAGS, REPO, load_dags

EXAMPLE = REPO / "examples" / "erp_to_shop.yaml"
FLOWLINK = str(Path(sys.executable).parent / "flowlink")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWLINK_HOME", str(tmp_path / "flowlink"))
    return tmp_path / "flowlink"


def published(tmp_path: Path, name: str) -> publish.Artifact:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["name"] = name
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return publish.publish(path).artifact


def names_in_shards(count: int) -> list[str]:
    """``count`` workflow names, each in another shard."""
    names: dict[int, str] = {}
    i = 0
    while len(names) < count:
        i += 1
        names.setdefault(shard(f"wf_{i}", SHARDS), f"wf_{i}")
    return sorted(names.values())


def run_dag_files(env: dict | None = None) -> dict:
    """Every file of dags/ run in a fresh interpreter as Airflow's dag-processor runs a DAG file, each as if in a
    process of its own (no verdicts kept from the files before): per file, the DAGs it made, the live files it read
    (in order) and the import error it raised, if any."""
    code = """
import json, runpy, sys
from pathlib import Path
import flowlink.live
from airflow.sdk import DAG

read = []
real = flowlink.live.read_artifact
flowlink.live.read_artifact = lambda path, **kw: read.append(Path(path).name) or real(path, **kw)
found = {}
for f in sorted(Path("dags").glob("*.py")):
    read.clear()
    flowlink.live._VERDICTS.clear()
    try:
        made, error = sorted(k for k, v in runpy.run_path(str(f)).items() if isinstance(v, DAG)), None
    except ImportError as exc:
        made, error = [], str(exc)
    found[f.name] = {"dags": made, "read": list(read), "error": error}
print(json.dumps(found))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **(env or {})}, cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_workflows_shard_depends_only_on_its_name():
    """CRC-32 of the name: the same in every process (Python's hash() is salted per process) and on every machine."""
    assert [shard(n, 16) for n in ("erp_to_shop", "second", "misnamed", "on_site")] == [15, 9, 0, 10]
    assert [shard(n, 32) for n in ("erp_to_shop", "second", "misnamed", "on_site")] == [31, 9, 0, 26]
    names = [f"wf_{i}" for i in range(1000)]
    code = "import json, sys; from flowlink.live import shard; print(json.dumps([shard(n, 16) for n in sys.argv[1:]]))"
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, *names],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    ]
    assert json.loads(runs[0]) == json.loads(runs[1]) == [shard(n, 16) for n in names]
    sizes = [sum(1 for n in names if shard(n, 16) == k) for k in range(16)]
    assert min(sizes) > 1000 / 16 / 2 and max(sizes) < 1000 / 16 * 2, sizes  # spread, no file left empty


def test_every_workflow_loads_once_from_its_shards_file_and_flowlinks_own_dags_once(home, tmp_path, airflow_db):
    from airflow.models.dag import DagModel

    names = names_in_shards(5)
    for name in names[:-1]:
        publish.make_live(published(tmp_path, name))
    site = settings.live_dir() / "site_b"  # one installed by an environment's agent
    site.mkdir()
    shutil.copy(published(tmp_path, names[-1]).path, site / f"{names[-1]}.json")

    bag = load_dags()
    assert not bag.import_errors, bag.import_errors
    assert sorted(bag.dag_ids) == sorted(names + OWN_DAGS)
    # no DAG made twice (a second file making one would be an import error of that file)
    assert sum(stat.dag_num for stat in bag.dagbag_stats) == len(names) + len(OWN_DAGS)
    where = {d: Path(bag.dags[d].fileloc).name for d in bag.dag_ids}
    assert where == {**{n: workflows_file(shard(n, SHARDS)) for n in names}, **dict.fromkeys(OWN_DAGS, OWN)}
    assert len(set(where.values())) == len(names) + 1  # five shards' files and flowlink_dags.py
    for name in names:  # what the scheduler and the task processes go by
        assert Path(DagModel.get_current(name).fileloc).name == workflows_file(shard(name, SHARDS))
    assert {t.queue for t in bag.get_dag(names[-1]).tasks} == {"site_b"}


def test_each_file_reads_only_the_live_files_of_its_shard(home, tmp_path):
    names = names_in_shards(3)
    for name in names:
        publish.make_live(published(tmp_path, name))
    (settings.live_dir() / "broken.json").write_text("{oops")

    found = run_dag_files()
    assert set(found) == {
        OWN,
        *(workflows_file(k) for k in range(SHARDS)),
        *(import_errors_file(k) for k in range(SHARDS)),
    }
    assert found[OWN] == {"dags": OWN_DAGS, "read": [], "error": None}
    expected_reads = {k: [f"{n}.json" for n in [*names, "broken"] if shard(n, SHARDS) == k] for k in range(SHARDS)}
    for k in range(SHARDS):
        made = found[workflows_file(k)]
        assert made["read"] == found[import_errors_file(k)]["read"] == expected_reads[k], k
        assert made["dags"] == [n for n in names if shard(n, SHARDS) == k] and made["error"] is None
    errors = {f: v["error"] for f, v in found.items() if v["error"]}
    assert list(errors) == [import_errors_file(shard("broken", SHARDS))]
    text = errors[import_errors_file(shard("broken", SHARDS))]
    assert f"shard {shard('broken', SHARDS)} of {SHARDS}" in text and "broken.json: not a Flowlink file" in text


def in_shard(k: int, prefix: str, count: int) -> list[str]:
    """``count`` names ``<prefix>_<i>`` whose shard is ``k``."""
    return [n for n in (f"{prefix}_{i}" for i in range(1, 10_000)) if shard(n, SHARDS) == k][:count]


def test_in_one_process_a_shards_second_file_does_not_verify_its_live_files_again(home, tmp_path, monkeypatch):
    """A DagBag of the whole folder parses a shard's two files in one process: after the workflows file, the report
    reads no live file and still names the broken one; after the report, the workflows file reads the valid files
    without verifying their checksums again, and not the broken one. A file changed since is verified again."""
    names = in_shard(0, "wf", 3)
    for name in names:
        publish.make_live(published(tmp_path, name))
    live = settings.live_dir()
    [bad_name] = in_shard(0, "broken", 1)
    (live / f"{bad_name}.json").write_text("{oops")
    reads: list[tuple[str, bool]] = []
    real = live_module.read_artifact

    def spy(path, verify=True):
        reads.append((Path(path).name, verify))
        return real(path, verify=verify)

    monkeypatch.setattr(live_module, "read_artifact", spy)
    monkeypatch.setattr(live_module, "_VERDICTS", {})
    part = (0, SHARDS)
    graphs, bad = live_module.read_graphs(live, part=part)  # the workflows file
    assert sorted(g.dag_id for g in graphs) == names and [p.name for p, _ in bad] == [f"{bad_name}.json"]
    assert sorted(reads) == sorted((f"{n}.json", True) for n in [bad_name, *names])
    reads.clear()
    assert live_module.read_graphs(live, part=part, graphs=False) == ([], bad)  # then the report: nothing read
    assert reads == []

    live_module._VERDICTS.clear()  # the other order
    assert live_module.read_graphs(live, part=part, graphs=False) == ([], bad)
    reads.clear()
    assert sorted(g.dag_id for g in live_module.read_graphs(live, part=part)[0]) == names
    assert sorted(reads) == [(f"{n}.json", False) for n in names]

    changed = live / f"{names[0]}.json"
    doc = json.loads(changed.read_text())
    doc["content"]["spec"]["description"] = "changed by hand"
    changed.write_text(json.dumps(doc))
    reads.clear()
    _, bad = live_module.read_graphs(live, part=part, graphs=False)
    assert (changed.name, True) in reads
    assert sorted(p.name for p, _ in bad) == sorted([f"{bad_name}.json", changed.name])
    assert "checksum mismatch" in dict((p.name, why) for p, why in bad)[changed.name]


def test_a_task_parse_builds_only_its_dag_from_its_one_live_file(home, tmp_path):
    """A task's process parses its DAG's file with the DAG's id in Airflow's parsing context: that file builds only
    that DAG and reads only its live file, however many the shard holds; any other file builds and reads nothing."""
    names = names_in_shards(3)
    same_shard = next(f"other_{i}" for i in range(1000) if shard(f"other_{i}", SHARDS) == shard(names[0], SHARDS))
    for name in [*names, same_shard]:
        publish.make_live(published(tmp_path, name))
    (settings.live_dir() / f"{same_shard}_broken.json").write_text("{oops")

    found = run_dag_files({"_AIRFLOW_PARSING_CONTEXT_DAG_ID": names[0], "_AIRFLOW_PARSING_CONTEXT_TASK_ID": "a.load"})
    own_file = workflows_file(shard(names[0], SHARDS))
    assert found.pop(own_file) == {"dags": [names[0]], "read": [f"{names[0]}.json"], "error": None}
    assert all(v == {"dags": [], "read": [], "error": None} for v in found.values()), found

    # a task of one of Flowlink's own DAGs: only flowlink_dags.py builds anything
    found = run_dag_files({"_AIRFLOW_PARSING_CONTEXT_DAG_ID": "flowlink_retry"})
    assert found.pop(OWN)["dags"] == OWN_DAGS
    assert all(v == {"dags": [], "read": [], "error": None} for v in found.values()), found


def test_the_two_file_layouts_flowlink_dags_py_still_gives_every_dag(home, tmp_path):
    """A package upgraded before `flowlink dags write` ran again: the old flowlink_dags.py still makes every DAG."""
    publish.make_live(published(tmp_path, "erp_to_shop"))
    code = (  # the warning caught by a handler of its own: Airflow's logging set-up decides what reaches stderr
        "import json, logging, airflow.sdk; from flowlink_airflow.dag_factory import dags; said = []; "
        "h = logging.Handler(); h.emit = lambda r: said.append(r.getMessage()); "
        "lg = logging.getLogger('flowlink_airflow.dag_factory'); lg.addHandler(h); lg.disabled = False; "
        "lg.setLevel(logging.WARNING); g = dict(dags()); print(json.dumps([sorted(g), said]))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=os.environ, cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    made, said = json.loads(out.stdout.strip().splitlines()[-1])
    assert made == sorted(["erp_to_shop", *OWN_DAGS])
    assert any("run `flowlink dags write` to spread them over several files" in s for s in said), said


OLD_LAYOUT = {  # what `flowlink dags write` wrote before the workflows were spread over several files
    "flowlink_dags.py": "from flowlink_airflow.dag_factory import dags; globals().update(dags())  # Flowlink's DAGs\n",
    "flowlink_import_errors.py": "from flowlink_airflow.dag_factory import report_broken_files; report_broken_files()"
    "  # Flowlink's live files that cannot become a DAG (airflow dag)\n",
}


def test_flowlink_dags_write_moves_a_folder_off_the_two_file_layout_and_says_so(tmp_path):
    folder = tmp_path / "dags"
    folder.mkdir()
    for name, text in OLD_LAYOUT.items():
        (folder / name).write_text(text)
    (folder / "team_dag.py").write_text("# the team's own DAG file (airflow DAG)\n")
    (folder / "flowlink_workflows_40.py").write_text("# not Flowlink's, though named like its files\n")

    def write(*args: str) -> list[str]:
        out = subprocess.run([FLOWLINK, "dags", "write", str(folder), *args], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    lines = write()
    assert f"replaced {folder / 'flowlink_dags.py'}" in lines
    assert (
        f"removed {folder / 'flowlink_import_errors.py'} (not part of this layout, replaced by the files above)"
        in lines
    )
    assert (
        f"left {folder / 'flowlink_workflows_40.py'} (a Flowlink file name that Flowlink did not write: left as it is)"
        in lines
    )
    assert sum(line.startswith("created ") for line in lines) == 2 * SHARDS
    assert "restart the dag-processor" in lines[-1]
    expected = {p.name: p.read_text() for p in (REPO / "dags").glob("*.py")}
    expected |= {"team_dag.py": "# the team's own DAG file (airflow DAG)\n"}
    expected |= {"flowlink_workflows_40.py": "# not Flowlink's, though named like its files\n"}
    assert {p.name: p.read_text() for p in folder.iterdir()} == expected

    lines = write()  # again: nothing to do, nothing moves
    assert sum(line.startswith("unchanged ") for line in lines) == 2 * SHARDS + 1
    assert not [line for line in lines if line.startswith(("created", "replaced", "removed", "restart"))]

    lines = write("--shards", "4")  # another number of files: the files of the other shards go
    assert sum(line.startswith("removed ") for line in lines) == 2 * (SHARDS - 4)
    assert sorted(p.name for p in folder.glob("flowlink_*.py")) == sorted(
        [OWN, "flowlink_workflows_40.py", *(f(k) for k in range(4) for f in (workflows_file, import_errors_file))]
    )
    assert "workflow_dags(3, of=4)" in (folder / workflows_file(3)).read_text()

    out = subprocess.run([FLOWLINK, "dags", "write", str(folder), "--shards", "0"], capture_output=True, text=True)
    assert out.returncode == 2 and "--shards: 0 is not from 1 to 100" in out.stderr
