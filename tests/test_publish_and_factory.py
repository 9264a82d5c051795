"""Publishing (versioned, checksummed, immutable) and the DAG factory (one DAG per live file, broken files reported;
the DAG files themselves: tests/test_dag_shards.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flowlink import publish, settings
from flowlink.errors import FlowlinkError
from flowlink.spec import SpecError
from tests.airflow_helpers import OWN_DAGS, REPO, load_dags

EXAMPLE = REPO / "examples" / "erp_to_shop.yaml"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWLINK_HOME", str(tmp_path / "flowlink"))
    return tmp_path / "flowlink"


def spec_copy(tmp_path: Path, name: str = "erp_to_shop", **changes) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["name"] = name
    data.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_publish_versions_only_changed_content_and_files_are_immutable(home, tmp_path):
    first = publish.publish(EXAMPLE)
    assert first.created and first.artifact.version == 1
    again = publish.publish(EXAMPLE)
    assert not again.created and again.artifact.path == first.artifact.path
    second = publish.publish(spec_copy(tmp_path, description="changed"))
    assert second.created and second.artifact.version == 2
    assert [p.name for p in publish.versions("erp_to_shop")] == ["erp_to_shop-v0001.json", "erp_to_shop-v0002.json"]
    for p in publish.versions("erp_to_shop"):
        assert p.stat().st_mode & 0o777 == 0o444
    assert not list((home / "published" / "erp_to_shop").glob(".*"))  # no temp files left behind

    art = publish.read_artifact(second.artifact.path)
    assert art.spec["description"] == "changed"
    assert set(art.stylesheets) == {"customers", "orders"}
    assert "<xsl:stylesheet" in art.stylesheets["customers"]
    assert art.sha256 == publish.checksum({"spec": art.spec, "stylesheets": art.stylesheets})
    assert publish.published("erp_to_shop", 1).sha256 == first.artifact.sha256
    with pytest.raises(FlowlinkError, match="no published version 7"):
        publish.published("erp_to_shop", 7)


def test_an_invalid_spec_is_never_published(home, tmp_path):
    bad = spec_copy(tmp_path, schedule={"sync": "auto", "repeat": "every_minute", "interval": 90})
    with pytest.raises(SpecError, match=r"schedule\.interval"):
        publish.publish(bad)
    assert not (home / "published").exists()


def test_a_damaged_published_file_is_refused(home, tmp_path):
    path = publish.publish(EXAMPLE).artifact.path
    os.chmod(path, 0o644)
    doc = json.loads(path.read_text())
    doc["content"]["stylesheets"]["customers"] = doc["content"]["stylesheets"]["customers"].replace("erp", "ERP")
    path.write_text(json.dumps(doc))
    with pytest.raises(publish.ArtifactError, match="checksum mismatch"):
        publish.read_artifact(path)
    path.write_text("{not json")
    with pytest.raises(publish.ArtifactError, match="invalid JSON"):
        publish.read_artifact(path)


def test_a_published_file_is_verified_from_the_bytes_read(home, tmp_path, monkeypatch):
    """The content is written on one line in the bytes its sha256 is of: reading hashes them, and encodes the content
    again only for a file written otherwise (reformatted, or by an older Flowlink)."""
    path = publish.publish(EXAMPLE).artifact.path
    raw = path.read_bytes()
    art = publish.read_artifact(path)
    assert raw.count(b"\n") == 7 and raw.splitlines()[6].startswith(b' "content": {"spec":')  # the 7th line
    encoded = []
    real_checksum = publish.checksum
    monkeypatch.setattr(publish, "checksum", lambda content: encoded.append(1) or real_checksum(content))
    assert publish.read_artifact(path) == art and not encoded

    os.chmod(path, 0o644)
    path.write_text(json.dumps(json.loads(raw), indent=4))  # the same content, laid out otherwise
    assert publish.read_artifact(path).spec == art.spec and encoded == [1]
    path.write_bytes(raw.replace(b'"name":"customers"', b'"name":"Customers"', 1))  # damaged in place
    with pytest.raises(publish.ArtifactError, match="checksum mismatch"):
        publish.read_artifact(path)
    path.write_bytes(raw.replace(b'\n "content": ', b'\n "content":  ', 1))  # one more space: still the content
    assert publish.read_artifact(path).sha256 == art.sha256


def make_live(tmp_path, name, **changes):
    return publish.make_live(publish.publish(spec_copy(tmp_path, name, **changes)).artifact)


def test_each_live_file_becomes_a_dag_with_its_schedule_groups_and_docs(home, tmp_path, airflow_db):
    make_live(tmp_path, "erp_to_shop")
    make_live(
        tmp_path, "nightly", schedule={"sync": "auto", "repeat": "daily", "at": "02:30", "timezone": "Europe/Berlin"}
    )
    make_live(tmp_path, "on_demand", schedule={"sync": "manual"})
    bag = load_dags()
    assert not bag.import_errors
    assert {"erp_to_shop", "nightly", "on_demand"} <= set(bag.dag_ids)

    dag = bag.get_dag("erp_to_shop")
    assert set(dag.task_ids) == {
        f"{tp}.{step}" for tp in ("customers", "orders") for step in ("extract", "transform", "load")
    } | {"all-loaded"}
    # the last task: a run in which any load failed ends failed, even when later touchpoints loaded
    assert dag.get_task("all-loaded").upstream_task_ids == {"customers.load", "orders.load"}
    assert (
        dag.get_task("all-loaded").trigger_rule == "none_failed" and not dag.get_task("all-loaded").downstream_task_ids
    )
    load = dag.get_task("orders.load")
    assert (load.workflow, load.touchpoint, load.version, load.reads) == (
        "erp_to_shop",
        "orders",
        1,
        "orders.transform",
    )
    assert dag.get_task("orders.extract").upstream_task_ids == {"customers.load"}
    assert dag.get_task("customers.transform").upstream_task_ids == {"customers.extract"}
    assert dag.get_task("orders.extract").trigger_rule == "all_done"
    assert {"flowlink", "v1", "sql->rest"} <= set(dag.tags)
    assert "erp_to_shop v1" in dag.doc_md and "every minute" in dag.doc_md
    assert dag.max_active_runs == 1
    assert type(dag.timetable).__module__ == "flowlink_airflow.timetable"
    assert bag.get_dag("nightly").timetable.summary.startswith("daily at 02:30 (Europe/Berlin)")
    manual = bag.get_dag("on_demand").timetable  # manual: never scheduled, and Airflow's DAG list says so
    assert type(manual).__name__ == "ManualTimetable" and not manual.can_be_scheduled
    assert manual.next_dagrun_info(last_automated_data_interval=None, restriction=None) is None
    from airflow.models.dag import DagModel  # what the UI's Schedule cell and `airflow dags details` show

    assert DagModel.get_current("on_demand").timetable_summary == "Manual"
    assert DagModel.get_current("nightly").timetable_summary.startswith("daily at 02:30")


def test_a_broken_live_file_is_reported_and_does_not_hide_the_others(home, tmp_path, airflow_db):
    from flowlink.dag_files import SHARDS, import_errors_file
    from flowlink.live import shard

    make_live(tmp_path, "good_one")
    live = settings.live_dir()
    (live / "broken_json.json").write_text("{oops")
    damaged = make_live(tmp_path, "damaged")
    os.chmod(damaged, 0o644)
    text = damaged.read_text()
    damaged.write_text(text.replace('"interval":1', '"interval":2'))
    assert damaged.read_text() != text
    shutil.copy(live / "good_one.json", live / "misnamed.json")

    bag = load_dags()
    assert "good_one" in bag.dag_ids
    assert "damaged" not in bag.dag_ids and "misnamed" not in bag.dag_ids
    errors = {Path(k).name: v for k, v in bag.import_errors.items()}
    # each broken file in the report of its shard (the file its DAG would be built in), and only there
    expected = {
        "broken_json.json: not a Flowlink file (invalid JSON": "broken_json",
        "damaged.json: checksum mismatch": "damaged",
        "misnamed.json: holds workflow 'good_one'": "misnamed",
    }
    assert set(errors) == {import_errors_file(shard(name, SHARDS)) for name in expected.values()}
    for line, name in expected.items():
        assert [f for f, text in errors.items() if line in text] == [import_errors_file(shard(name, SHARDS))], line


def test_a_task_process_builds_only_its_own_dag(home, tmp_path):
    """In a task's process Airflow parses the DAG's own file (its shard's) with the DAG's id in the parsing context."""
    from flowlink.dag_files import SHARDS, workflows_file
    from flowlink.live import shard

    make_live(tmp_path, "first")
    make_live(tmp_path, "second")
    (settings.live_dir() / "broken.json").write_text("{oops")
    code = (
        "import json, runpy; from airflow.sdk import DAG; "
        f"built = runpy.run_path('dags/{workflows_file(shard('second', SHARDS))}'); "
        "print(json.dumps([sorted(k for k, v in built.items() if isinstance(v, DAG)), {t.task_id: [t.workflow, "
        "t.touchpoint, t.version, t.reads] for t in built['second'].tasks if t.task_id.startswith('orders.')}]))"
    )
    env = {**os.environ, "_AIRFLOW_PARSING_CONTEXT_DAG_ID": "second", "_AIRFLOW_PARSING_CONTEXT_TASK_ID": "orders.load"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    built, operators = json.loads(out.stdout.strip().splitlines()[-1])
    assert built == ["second"]
    # what each operator runs, as render set it, in the task's own process
    assert operators == {
        "orders.extract": ["second", "orders", 1, ""],
        "orders.transform": ["second", "orders", 1, "orders.extract"],
        "orders.load": ["second", "orders", 1, "orders.transform"],
    }


def test_an_environment_folder_sends_the_tasks_to_that_environments_queue(home, tmp_path, airflow_db):
    art = publish.publish(spec_copy(tmp_path, "on_site")).artifact
    site = settings.live_dir() / "site_b"  # where the site_b agent installs
    site.mkdir(parents=True)
    shutil.copy(art.path, site / "on_site.json")
    make_live(tmp_path, "in_cloud")
    bag = load_dags()
    on_site = bag.get_dag("on_site")
    assert {t.queue for t in on_site.tasks} == {"site_b"} and "env:site_b" in on_site.tags
    assert {t.queue for t in bag.get_dag("in_cloud").tasks} == {"default"}
    assert publish.live("on_site").version == 1

    shutil.copy(art.path, settings.live_dir() / "on_site.json")  # live twice: reported, not silently doubled
    bag = load_dags()
    text = next(v for k, v in bag.import_errors.items() if "flowlink_import_errors_" in k)
    assert "on_site.json: on_site is also live in" in text


def test_parsing_imports_nothing_that_only_task_execution_needs(home, tmp_path):
    make_live(tmp_path, "erp_to_shop")
    code = (
        "import runpy, sys, json; "
        "from pathlib import Path; [runpy.run_path(str(f)) for f in sorted(Path('dags').glob('*.py'))]; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('flowlink.store', 'flowlink.sync', "
        "'flowlink.connectors', 'flowlink.deployments', 'flowlink_airflow.hooks', 'flowlink_airflow.triggers', "
        "'requests', 'lxml')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=os.environ, cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_new_live_version_is_read_again_in_the_same_process(home, tmp_path):
    from flowlink_airflow.dag_factory import workflows as dag_factory

    make_live(tmp_path, "erp_to_shop")
    assert "v1" in dag_factory.build_dags()["erp_to_shop"].tags
    make_live(tmp_path, "erp_to_shop", description="second version")
    dag = dag_factory.build_dags()["erp_to_shop"]
    assert "v2" in dag.tags and "second version" in dag.doc_md


def test_flowlink_dags_write_puts_the_repositorys_dag_files_into_a_folder(tmp_path):
    """The one documented way to Airflow: `flowlink dags write FOLDER` writes what this repository's dags/ holds."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "flowlink"), "dags", "write", str(tmp_path / "dags")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    written = {p.name: p.read_text() for p in (tmp_path / "dags").iterdir()}
    assert written == {p.name: p.read_text() for p in (REPO / "dags").glob("*.py")}
    shards = [f"{n:02d}" for n in range(16)]
    assert set(written) == {
        "flowlink_dags.py",
        *(f"flowlink_workflows_{n}.py" for n in shards),
        *(f"flowlink_import_errors_{n}.py" for n in shards),
    }
    assert all(len(text.splitlines()) == 1 for text in written.values())
    assert out.stdout.count("created ") == len(written)


def test_the_dag_files_give_every_workflow_and_flowlinks_own_dags(home, tmp_path):
    """The DAGs folder in a fresh interpreter, each file run as the dag-processor runs it: Flowlink's own DAGs from
    flowlink_dags.py, each live workflow from its shard's file (the DAG's file: Airflow runs its tasks from there)."""
    from flowlink.dag_files import SHARDS, workflows_file
    from flowlink.live import shard

    make_live(tmp_path, "erp_to_shop")
    code = (
        "import json, runpy; from pathlib import Path; from airflow.sdk import DAG; "
        "print(json.dumps({f.name: sorted(k for k, v in runpy.run_path(str(f)).items() if isinstance(v, DAG)) "
        "for f in sorted(Path('dags').glob('*.py'))}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=os.environ, cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    found = {k: v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items() if v}
    assert found == {
        "flowlink_dags.py": OWN_DAGS,
        workflows_file(shard("erp_to_shop", SHARDS)): ["erp_to_shop"],
    }
