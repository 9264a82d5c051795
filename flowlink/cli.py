"""The `flowlink` command. User mistakes end in a one-paragraph message on stderr and exit status 1, never a traceback."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from flowlink.errors import FlowlinkError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _store():
    from flowlink.store import Store

    return Store.open()


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _table(title: str, columns: list[str], rows: list[list]) -> None:
    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(_cell(v) for v in r))
    out.print(table)


def _count(text: str) -> int:
    """argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def cmd_validate(args) -> int:
    from flowlink.spec import SpecError, load_spec

    failed = 0
    for f in args.files:
        try:
            wf = load_spec(f)
            out.print(f"{f}: ok ({wf.name}, {len(wf.touchpoints)} touchpoints)")
        except SpecError as exc:
            failed += 1
            err.print(str(exc), markup=False)
    return 1 if failed else 0


def cmd_schema(args) -> int:
    from flowlink.spec import json_schema

    _print_json(json_schema())
    return 0


def cmd_generate(args) -> int:
    from flowlink.mapping import stylesheet_for
    from flowlink.spec import load_spec

    wf = load_spec(args.file)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    for tp in wf.touchpoints:
        xslt = stylesheet_for(tp, Path(args.file).parent)
        if args.out:
            path = Path(args.out) / f"{tp.name}.xslt"
            path.write_text(xslt, encoding="utf-8")
            out.print(f"{tp.name}: {path}")
        else:
            kind = "your XSLT" if tp.xslt else f"{len(tp.mapping)} mapping rules"
            out.print(f"{tp.name}: ok ({kind}, {len(xslt)} bytes)")
    return 0


def cmd_preview(args) -> int:
    from flowlink import publish
    from flowlink.mapping import stylesheet_for
    from flowlink.spec import load_spec

    if Path(args.workflow).is_file():
        wf = load_spec(args.workflow)
        names = [tp.name for tp in wf.touchpoints]
        if args.touchpoint not in names:
            raise FlowlinkError(f"workflow {wf.name!r} has no touchpoint {args.touchpoint!r} (it has: {', '.join(names)})")
        xslt = stylesheet_for(wf.touchpoint(args.touchpoint), Path(args.workflow).parent)
    else:
        art = publish.published(args.workflow)
        if args.touchpoint not in art.stylesheets:
            raise FlowlinkError(f"workflow {args.workflow!r} has no touchpoint {args.touchpoint!r} "
                                f"(it has: {', '.join(art.stylesheets)})")
        xslt = art.stylesheets[args.touchpoint]
    print(xslt)
    return 0


def cmd_publish(args) -> int:
    from flowlink.actions import publish_workflow

    done = publish_workflow(_store(), args.file)
    art = done.result.artifact
    state = "published" if done.result.created else "unchanged, still"
    out.print(f"{art.workflow}: {state} v{art.version} sha256 {art.sha256}")
    out.print(f"  file: {art.path}\n  live: {done.live_path}")
    if done.schedule_change:
        out.print(f"  schedule: {done.schedule_change}")
    return 0


def cmd_workflows(args) -> int:
    from dag_factory.graph import read_graphs
    from flowlink import settings
    from flowlink.schedule import summary

    graphs, broken = read_graphs(settings.live_dir())
    if args.json:
        _print_json({"live": [{"workflow": g.dag_id, "version": g.version, "schedule": summary(g.schedule)} for g in graphs],
                     "broken": [{"file": str(p), "reason": r} for p, r in broken]})
        return 1 if broken else 0
    _table("Live workflows", ["workflow", "version", "touchpoints", "schedule", "published"],
           [[g.dag_id, g.version, ", ".join(t.name for t in g.touchpoints), summary(g.schedule), g.published_at] for g in graphs])
    for path, reason in broken:
        err.print(f"broken: {path}: {reason}", markup=False)
    return 1 if broken else 0


def cmd_bucket(args) -> int:
    from flowlink.store import bucket

    store = _store()
    rows = bucket.rows(store, args.workflow, touchpoint=args.touchpoint, status=args.status, limit=args.limit, offset=args.offset)
    total = bucket.count(store, args.workflow, touchpoint=args.touchpoint, status=args.status)
    if args.json:
        _print_json({"total": total, "rows": rows})
        return 0
    _table(f"Resync bucket of {args.workflow}: {len(rows)} of {total}",
           ["touchpoint", "source id", "destination id", "status", "tries", "message", "last run", "updated"],
           [[r["touchpoint"], r["source_id"], r["destination_id"], r["status"], r["tries"], r["message"], r["last_run"],
             r["updated_at"]] for r in rows])
    return 0


@contextlib.contextmanager
def _airflow():
    """Airflow sets up its logging (to stdout) when first imported: keep its lines off the command's output."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _known_to_airflow(workflow: str) -> None:
    with _airflow():
        from airflow.models.dag import DagModel

        if DagModel.get_current(workflow) is None:
            raise FlowlinkError(f"Airflow does not know the DAG {workflow!r} yet: is the dag-processor running "
                                f"(or run `airflow dags reserialize`)?")


def _trigger(workflow: str, conf: dict) -> str:
    """Queue a DAG run through Airflow's own API on its metadata database."""
    with _airflow():
        from airflow.api.common.trigger_dag import trigger_dag
        from airflow.utils.types import DagRunTriggeredByType

        return trigger_dag(workflow, conf=conf, triggered_by=DagRunTriggeredByType.CLI).run_id


def cmd_resync(args) -> int:
    from flowlink.actions import cancel_resync, record_resync, resync_records, resync_started

    store = _store()
    ids = resync_records(store, args.workflow, args.touchpoint, ids=args.id, failed=args.failed)
    _known_to_airflow(args.workflow)
    resync_id = record_resync(store, args.workflow, args.touchpoint, ids)
    try:
        run_id = _trigger(args.workflow, {"resync_id": resync_id})
    except Exception as exc:
        cancel_resync(store, resync_id)  # nothing half-written: no request without its run
        raise FlowlinkError(f"could not start the resync run: {exc}") from None
    resync_started(store, resync_id, run_id)
    out.print(f"resync #{resync_id}: {len(ids)} {args.touchpoint} records, run {run_id}")
    return 0


def cmd_runs(args) -> int:
    from flowlink.store import snapshots

    runs = snapshots.runs(_store(), args.workflow, limit=args.limit)
    if args.json:
        _print_json(runs)
        return 0
    _table(f"Runs of {args.workflow}", ["run id", "version", "started", "ended", "failed records", "status"],
           [[r["run_id"], r["version"], r["started_at"], r["ended_at"], r["failed_records"],
             "failed" if r["failed_steps"] else "success"] for r in runs])
    return 0


def cmd_snapshot(args) -> int:
    from flowlink.store import snapshots

    snap = snapshots.snapshot(_store(), args.run_id, args.workflow)
    if not snap["steps"]:
        raise FlowlinkError(f"no snapshot for run {args.run_id!r} (see `flowlink runs WORKFLOW`)")
    if args.json:
        _print_json(snap)
        return 0
    _table(f"Snapshot of run {args.run_id}", ["touchpoint", "step", "status", "started", "ended", "in", "out", "failed", "files", "message"],
           [[s["touchpoint"], s["step"], s["status"], s["started_at"], s["ended_at"], s["count_in"], s["count_out"],
             s["count_failed"], len(s["files"]), s["message"]] for s in snap["steps"]])
    log = snap["data_log"][: args.limit]
    _table(f"Data log ({len(log)} of {len(snap['data_log'])})", ["touchpoint", "step", "source id", "destination id", "status", "tries", "message"],
           [[d["touchpoint"], d["step"], d["source_id"], d["destination_id"], d["status"], d["tries"], d["message"]] for d in log])
    return 0


def cmd_feeds(args) -> int:
    from flowlink.store import feeds

    rows = feeds.entries(_store(), workflow=args.workflow, tag=args.tag, limit=args.limit)
    if args.json:
        _print_json(rows)
        return 0
    _table("Feeds", ["at", "tag", "workflow", "message"], [[r["at"], r["tag"], r["workflow"], r["message"]] for r in rows])
    return 0


def cmd_db_upgrade(args) -> int:
    store = _store()
    out.print(f"store {store.engine.url!r} at revision {store.revision()}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowlink", description="Business-application integrations on Apache Airflow.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=func)
        return sp

    add("validate", cmd_validate, "validate workflow specs").add_argument("files", nargs="+", metavar="FILE")
    add("schema", cmd_schema, "print the JSON Schema of workflow specs (for editors)")
    sp = add("generate", cmd_generate, "compile each touchpoint's mapping to XSLT")
    sp.add_argument("file", metavar="FILE")
    sp.add_argument("--out", metavar="DIR", help="write DIR/<touchpoint>.xslt")
    sp = add("preview", cmd_preview, "print the XSLT a touchpoint runs")
    sp.add_argument("workflow", metavar="WORKFLOW", help="a spec file or a published workflow name")
    sp.add_argument("touchpoint", metavar="TOUCHPOINT")
    add("publish", cmd_publish, "publish a spec as a new version and put it live").add_argument("file", metavar="FILE")
    add("workflows", cmd_workflows, "list live workflows and broken live files").add_argument("--json", action="store_true")
    sp = add("bucket", cmd_bucket, "list the resync bucket of a workflow")
    sp.add_argument("workflow", metavar="WORKFLOW")
    sp.add_argument("--touchpoint")
    sp.add_argument("--status", choices=["unprocessed", "success", "failed", "skipped"])
    sp.add_argument("--limit", type=_count, default=100)
    sp.add_argument("--offset", type=_count, default=0)
    sp.add_argument("--json", action="store_true")
    sp = add("resync", cmd_resync, "start a run limited to chosen records of a touchpoint")
    sp.add_argument("workflow", metavar="WORKFLOW")
    sp.add_argument("--touchpoint", required=True)
    which = sp.add_mutually_exclusive_group(required=True)
    which.add_argument("--failed", action="store_true", help="all failed records of the touchpoint")
    which.add_argument("--id", nargs="+", metavar="ID", help="these source ids")
    sp = add("runs", cmd_runs, "list the runs of a workflow")
    sp.add_argument("workflow", metavar="WORKFLOW")
    sp.add_argument("--limit", type=_count, default=20)
    sp.add_argument("--json", action="store_true")
    sp = add("snapshot", cmd_snapshot, "show the process snapshot of a run")
    sp.add_argument("run_id", metavar="RUN_ID")
    sp.add_argument("--workflow")
    sp.add_argument("--limit", type=_count, default=50, help="data log rows to show")
    sp.add_argument("--json", action="store_true")
    sp = add("feeds", cmd_feeds, "list non-data activity: publishes, schedule changes, resyncs")
    sp.add_argument("--workflow")
    sp.add_argument("--tag")
    sp.add_argument("--limit", type=_count, default=50)
    sp.add_argument("--json", action="store_true")
    add("db-upgrade", cmd_db_upgrade, "create or migrate the Flowlink store")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except FlowlinkError as exc:
        err.print(f"flowlink {args.command}: {exc}", markup=False)
        return 1
    except OSError as exc:  # a folder that cannot be written, a disk that is full, ...
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"flowlink {args.command}: {exc.strerror or exc}{where}", markup=False)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
