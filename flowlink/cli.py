"""The `flowlink` command. User mistakes end in a one-paragraph message on stderr and exit status 1, never a traceback."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flowlink.errors import FlowlinkError, plural

if TYPE_CHECKING:
    from flowlink.deployments import Environment

out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
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
    from flowlink.assets import resolve_after
    from flowlink.spec import SpecError, load_spec

    failed = 0
    for f in args.files:
        try:
            wf = load_spec(f)
            resolve_after(wf, f)  # sync: after names published workflows, in no cycle
            out.print(f"{f}: ok ({wf.name}, {plural(len(wf.touchpoints), 'touchpoint')})")
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
            kind = "your XSLT" if tp.xslt else plural(len(tp.mapping or []), "mapping rule")
            out.print(f"{tp.name}: ok ({kind}, {plural(len(xslt), 'byte')})")
    return 0


def cmd_preview(args) -> int:
    from flowlink import publish
    from flowlink.mapping import stylesheet_for
    from flowlink.spec import load_spec

    if Path(args.workflow).is_file():
        wf = load_spec(args.workflow)
        names = [tp.name for tp in wf.touchpoints]
        if args.touchpoint not in names:
            raise FlowlinkError(
                f"workflow {wf.name!r} has no touchpoint {args.touchpoint!r} (it has: {', '.join(names)})"
            )
        xslt = stylesheet_for(wf.touchpoint(args.touchpoint), Path(args.workflow).parent)
    else:
        art = publish.published(args.workflow)
        if args.touchpoint not in art.stylesheets:
            raise FlowlinkError(
                f"workflow {args.workflow!r} has no touchpoint {args.touchpoint!r} "
                f"(it has: {', '.join(art.stylesheets)})"
            )
        xslt = art.stylesheets[args.touchpoint]
    print(xslt)
    return 0


def cmd_publish(args) -> int:
    from flowlink.actions import publish_workflow

    done = publish_workflow(_store(), args.file)
    art = done.result.artifact
    state = "published" if done.result.created else "unchanged, still"
    out.print(f"{art.workflow}: {state} v{art.version} sha256 {art.sha256}")
    out.print(f"  file: {art.path}\n  deploy it: flowlink deploy {art.workflow}")
    if done.schedule_change:
        out.print(f"  schedule: {done.schedule_change}")
    return 0


def cmd_workflows(args) -> int:
    from flowlink import settings
    from flowlink.live import read_graphs
    from flowlink.schedule import summary

    graphs, broken = read_graphs(settings.live_dir())
    if args.json:
        _print_json(
            {
                "live": [{"workflow": g.dag_id, "version": g.version, "schedule": summary(g.schedule)} for g in graphs],
                "broken": [{"file": str(p), "reason": r} for p, r in broken],
            }
        )
        return 1 if broken else 0
    _table(
        "Live workflows",
        ["workflow", "version", "touchpoints", "schedule", "published"],
        [
            [g.dag_id, g.version, ", ".join(t.name for t in g.touchpoints), summary(g.schedule), g.published_at]
            for g in graphs
        ],
    )
    for path, reason in broken:
        err.print(f"broken: {path}: {reason}", markup=False)
    return 1 if broken else 0


def cmd_bucket(args) -> int:
    from flowlink.store import bucket

    store = _store()
    rows = bucket.rows(
        store, args.workflow, touchpoint=args.touchpoint, status=args.status, limit=args.limit, offset=args.offset
    )
    total = bucket.count(store, args.workflow, touchpoint=args.touchpoint, status=args.status)
    if args.json:
        _print_json({"total": total, "rows": rows})
        return 0
    _table(
        f"Resync bucket of {args.workflow}: {len(rows)} of {total}",
        ["touchpoint", "source id", "destination id", "status", "tries", "message", "last run", "updated"],
        [
            [
                r["touchpoint"],
                r["source_id"],
                r["destination_id"],
                r["status"],
                r["tries"],
                r["message"],
                r["last_run"],
                r["updated_at"],
            ]
            for r in rows
        ],
    )
    return 0


def cmd_resync(args) -> int:
    from flowlink.actions import resync

    resync_id, ids, run_id = resync(
        _store(), args.workflow, args.touchpoint, ids=args.id, failed=args.failed, unprocessed=args.unprocessed
    )
    out.print(f"resync #{resync_id}: {plural(len(ids), args.touchpoint + ' record')}, run {run_id}")
    return _wait(args, run_id)


def cmd_runs(args) -> int:
    from flowlink.actions import run_list

    runs, problem = run_list(_store(), args.workflow, limit=args.limit)
    if problem:
        err.print(f"flowlink runs: status unknown: {problem}", markup=False)
    if args.json:
        _print_json(runs)
        return 0
    _table(
        f"Runs of {args.workflow}",
        ["run id", "version", "started", "ended", "failed records", "status", "kind"],
        [
            [
                r["run_id"],
                r["version"],
                r["started_at"],
                r["ended_at"],
                r["failed_records"],
                r["status"] or "unknown",
                r["kind"],
            ]
            for r in runs
        ],
    )
    return 0


def _wait(args, run_id: str) -> int:
    """--wait: progress until the run has ended; 0 when it succeeded, 1 when it failed (saying why)."""
    if not args.wait:
        return 0
    from flowlink.actions import wait_for_run

    with _Progress(run_id) as progress:
        run, reasons = wait_for_run(_store(), args.workflow, run_id, timeout=args.timeout, progress=progress.update)
    if run.state == "success":
        out.print(f"run {run_id}: success")
        return 0
    err.print(f"run {run_id}: {run.state}", markup=False)
    for reason in reasons:
        err.print(f"  {reason}", markup=False)
    return 1


class _Progress:
    """The steps of a run done and running: one live line on a terminal, else a plain line on each change."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.last: str | None = None
        self.live: Any = None  # rich.live.Live on a terminal

    def __enter__(self):
        if out.is_terminal:
            from rich.live import Live

            self.live = Live("", console=out, transient=True, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, run, tasks: dict[str, str]) -> None:
        from flowlink.airflow_adapter import DONE

        done = sum(state in DONE for state in tasks.values())
        running = sorted(t for t, state in tasks.items() if state not in DONE and state != "none")
        line = f"run {self.run_id}: {run.state}, {done} of {plural(len(tasks), 'step')} done"
        if running:
            shown = [t if tasks[t] == "running" else f"{t} ({tasks[t]})" for t in running[:4]]
            line += f"; now: {', '.join(shown)}" + (" ..." if len(running) > 4 else "")
        if line == self.last:
            return
        self.last = line
        if self.live is not None:
            from rich.text import Text

            self.live.update(Text(line))
        else:
            out.print(line, markup=False)


def cmd_snapshot(args) -> int:
    from flowlink.store import snapshots

    snap = snapshots.snapshot(_store(), args.run_id, args.workflow)
    if not snap["steps"]:
        raise FlowlinkError(f"no snapshot for run {args.run_id!r} (see `flowlink runs WORKFLOW`)")
    if args.json:
        _print_json(snap)
        return 0
    _table(
        f"Snapshot of run {args.run_id}",
        ["touchpoint", "step", "status", "started", "ended", "in", "out", "failed", "files", "message"],
        [
            [
                s["touchpoint"],
                s["step"],
                s["status"],
                s["started_at"],
                s["ended_at"],
                s["count_in"],
                s["count_out"],
                s["count_failed"],
                len(s["files"]),
                s["message"],
            ]
            for s in snap["steps"]
        ],
    )
    log = snap["data_log"][: args.limit]
    _table(
        f"Data log ({len(log)} of {len(snap['data_log'])})",
        ["touchpoint", "step", "source id", "destination id", "status", "tries", "message"],
        [
            [d["touchpoint"], d["step"], d["source_id"], d["destination_id"], d["status"], d["tries"], d["message"]]
            for d in log
        ],
    )
    return 0


def cmd_feeds(args) -> int:
    from flowlink.store import feeds

    rows = feeds.entries(_store(), workflow=args.workflow, tag=args.tag, limit=args.limit)
    if args.json:
        _print_json(rows)
        return 0
    _table(
        "Feeds", ["at", "tag", "workflow", "message"], [[r["at"], r["tag"], r["workflow"], r["message"]] for r in rows]
    )
    return 0


def _days(text: str) -> int:
    """argparse type: a retention period, whole days from 1."""
    from flowlink import settings

    try:
        return settings.check_retention_days(text, "the number of days")
    except FlowlinkError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_purge(args) -> int:
    from flowlink import retention, settings

    days = args.days or settings.retention_days()
    store = _store()
    result = retention.plan(store, days) if args.dry_run else retention.purge(store, days)
    if args.json:
        _print_json(result)
        return 0
    what = "Would purge (dry run, nothing changed)" if args.dry_run else "Purged"
    _table(f"{what}: older than {days} days, before {_cell(result['cutoff'])} UTC", *retention.table(result))
    return 0


def cmd_agent(args) -> int:
    from flowlink.agent import Agent, read_token

    if args.interval <= 0:
        raise FlowlinkError(f"--interval must be more than 0 seconds, got {args.interval:g}")
    agent = Agent(args.server, read_token(args.token_file), args.environment, args.install_dir, args.interval)
    if args.once:
        return 0 if agent.run_once().ok else 1
    agent.run_forever()
    return 0


def cmd_db_upgrade(args) -> int:
    store = _store()
    out.print(f"store {store.engine.url!r} at revision {store.revision()}")
    return 0


def _env_rows(envs: list[Environment]) -> list[list]:
    return [
        [
            e["name"],
            e["kind"],
            "yes" if e["is_primary"] else "",
            "enabled" if e["enabled"] else "disabled",
            f"{e['pending_timeout']} min",
            e["agent"],
            e["last_heartbeat"],
            _retry_cell(e),
        ]
        for e in envs
    ]


def _retry_cell(e: Environment) -> str:
    return (
        f"{e['retry_every']}: {e['retry_max_tries']} tries, wait {e['retry_wait_minutes']} min, "
        f"{e['retry_batch_size']} per run"
    )


def cmd_env(args) -> int:
    from flowlink import deployments

    store = _store()
    if args.env_command == "add":
        env = deployments.add_environment(store, args.name, args.kind, args.pending_timeout)
        out.print(f"environment {env['name']} ({env['kind']}) added" + (", primary" if env["is_primary"] else ""))
    elif args.env_command == "set":
        retry = {
            k: getattr(args, k) for k in ("retry_max_tries", "retry_wait_minutes", "retry_batch_size", "retry_every")
        }
        if not (
            args.primary
            or args.pending_timeout is not None
            or args.enabled is not None
            or any(v is not None for v in retry.values())
        ):
            raise FlowlinkError(
                "say what to change: --primary, --pending-timeout MINUTES, --enable or --disable, "
                "--retry-max-tries N, --retry-wait MINUTES, --retry-batch-size N or --retry-every hourly|daily"
            )
        deployments.set_environment(
            store, args.name, primary=args.primary, pending_timeout=args.pending_timeout, enabled=args.enabled, **retry
        )
        _table("Environments", ENV_COLUMNS, _env_rows(deployments.environments_list(store)))
    elif args.env_command == "token":
        return _env_token(store, args)
    else:
        envs = deployments.environments_list(store)
        if args.json:
            _print_json(envs)
        else:
            _table("Environments", ENV_COLUMNS, _env_rows(envs))
    return 0


ENV_COLUMNS = ["environment", "kind", "primary", "state", "pending timeout", "agent", "last heartbeat", "retry"]


def _env_token(store, args) -> int:
    """Issue a token (printed once on stdout), list the tokens or revoke one; a listing never shows a token."""
    from flowlink import deployments

    if args.revoke:
        t = deployments.revoke_token(store, args.name, args.revoke)
        out.print(
            f"agent token #{t['id']} of {t['environment']} (fingerprint {t['fingerprint']}) revoked "
            f"{_cell(t['revoked_at'])} UTC: refused from now on"
        )
    elif args.list:
        rows = deployments.tokens(store, args.name)
        if args.json:
            _print_json(rows)
        else:
            _table(
                f"Agent tokens of {args.name}",
                ["id", "fingerprint", "created", "revoked", "state"],
                [
                    [
                        t["id"],
                        t["fingerprint"],
                        t["created_at"],
                        t["revoked_at"],
                        "active" if t["active"] else "revoked",
                    ]
                    for t in rows
                ],
            )
    else:
        token = deployments.issue_token(store, args.name)
        t = next(t for t in deployments.tokens(store, args.name) if t["fingerprint"] == deployments.fingerprint(token))
        err.print(
            f"agent token #{t['id']} for {args.name}, fingerprint {t['fingerprint']} (shown once; only its hash "
            f"is stored; revoke it with: flowlink env token {args.name} --revoke {t['id']}):",
            markup=False,
        )
        print(token)
    return 0


def cmd_deploy(args) -> int:
    from flowlink import actions

    d = actions.deploy(_store(), args.workflow, args.version)
    out.print(
        f"deployment {d['id']}: {d['workflow']} v{d['version']} to {d['environment']} is Pending "
        f"(try {d['tries']}); started {_cell(d['started_at'])}, pending timeout {d['pending_timeout']} min, "
        f"wait till {_cell(d['wait_till'])} UTC; tracked by run {d['run_id']}"
    )
    return 0


def cmd_undeploy(args) -> int:
    from flowlink import actions

    d = actions.undeploy(_store(), args.workflow)
    out.print(
        f"deployment {d['id']}: undeploy of {d['workflow']} from {d['environment']} is Pending; tracked by run {d['run_id']}"
    )
    return 0


def cmd_run(args) -> int:
    from flowlink import actions

    run_id = actions.execute(_store(), args.workflow)
    out.print(f"{args.workflow}: run {run_id}")
    return _wait(args, run_id)


def cmd_check(args) -> int:
    from flowlink.check import check, load_workflow, problems

    wf = load_workflow(args.workflow)
    checks = check(wf)
    bad = problems(checks)
    if args.json:
        _print_json({"workflow": wf.name, "ok": not bad, "checks": [c.as_dict() for c in checks]})
        return 1 if bad else 0
    table = Table(title=f"Check of {wf.name}", title_justify="left")
    for column in ("check", "what", "result", "detail"):
        table.add_column(column)
    colour = {"ok": "green", "warning": "yellow", "problem": "red"}
    for c in checks:
        table.add_row(c.check, c.what, f"[{colour[c.result.value]}]{c.result.value}[/]", escape(c.detail))
    out.print(table)
    out.print(f"{plural(len(bad), 'problem')}" if bad else "no problems")
    return 1 if bad else 0


def _limit(text: str) -> int:
    """argparse type: the records of a try, 1 to flowlink.trial.MAX_LIMIT."""
    from flowlink.trial import check_limit

    try:
        return check_limit(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    except FlowlinkError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _shown(value) -> str:
    """A field's value in a table: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def cmd_try(args) -> int:
    from itertools import zip_longest

    from flowlink import trial
    from flowlink.states import TrialStatus

    subject = trial.subject(args.workflow, args.touchpoint)
    known = None
    if subject.touchpoint.load.method == "create_or_update":  # updates by the ids the bucket keeps (read only)
        from flowlink.store import bucket

        def known(source_ids: list[str]) -> dict[str, str]:
            return bucket.destination_ids(_store(), subject.workflow, subject.touchpoint.name, source_ids)

    result = trial.try_touchpoint(
        subject,
        lambda: trial.source_from_connection(subject.source),
        limit=args.limit,
        ids=args.ids,
        destination_ids=known,
    )
    failed = [r for r in result.records if r.status is TrialStatus.FAILED]
    if args.json:
        _print_json(result.as_dict())
    else:
        version = f" v{result.version}" if result.version else " (spec file)"
        out.print(f"{result.workflow}{version}, touchpoint {result.touchpoint}: {result.chosen} from {result.source}")
        colour = {"ready": "green", "failed": "red", "skipped": "yellow"}
        for r in result.records:
            table = Table(title=f"record {escape(r.key)}: [{colour[r.status]}]{r.status}[/]", title_justify="left")
            for column in ("source field", "value", "output field", "value"):
                table.add_column(column)
            source = list((r.source or {}).items())
            output = [item for row in r.output for item in row.items()]
            for (sname, svalue), (oname, ovalue) in zip_longest(source, output, fillvalue=(None, None)):
                cells = [
                    sname,
                    None if sname is None else _shown(svalue),
                    oname,
                    None if oname is None else _shown(ovalue),
                ]
                table.add_row(*(escape(_cell(c)) for c in cells))
            out.print(table)
            if r.message:
                out.print(f"  {r.status} in {r.step}: {r.message}", markup=False)
            for q in r.requests:
                body = json.dumps(q.body, ensure_ascii=False)
                out.print(f"  would send: {q.method} {q.where} {body}", markup=False)
                if q.note:
                    out.print(f"    ({q.note})", markup=False)
        out.print(
            f"{plural(len(result.records), 'record')}: {result.count(TrialStatus.READY)} ready to load, "
            f"{len(failed)} failed, {result.count(TrialStatus.SKIPPED)} skipped; nothing was sent and no "
            "watermark moved",
            markup=False,
        )
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        err.print(f"flowlink try: record {first.key} failed in {first.step}: {first.message}{more}", markup=False)
        return 1
    return 0


def cmd_deployments(args) -> int:
    from flowlink import deployments

    rows = deployments.listing(_store(), args.environment)
    if args.json:
        _print_json(rows)
        return 0
    _table(
        "Deployments",
        [
            "workflow",
            "environment",
            "action",
            "version",
            "status",
            "tries",
            "started",
            "pending timeout",
            "wait till",
            "message",
        ],
        [
            [
                d["workflow"],
                d["environment"],
                d["action"],
                d["version"],
                d["status"],
                d["tries"],
                d["started_at"],
                f"{d['pending_timeout']} min",
                d["wait_till"],
                d["message"],
            ]
            for d in rows
        ],
    )
    return 0


def cmd_deployment_log(args) -> int:
    from flowlink import deployments

    d, steps = deployments.log_of(_store(), args.workflow)
    if args.json:
        _print_json({"deployment": d, "steps": steps})
        return 0
    _table(
        f"Deployment {d['id']}: {d['action']} of {d['workflow']} v{d['version']} to {d['environment']}: {d['status']}",
        ["at", "step", "status", "message"],
        [[x["at"], x["step"], x["status"], x["message"]] for x in steps],
    )
    return 0


def _shards(text: str) -> int:
    """argparse type of `flowlink dags write --shards`: how many files the workflows are spread over."""
    from flowlink.dag_files import MAX_SHARDS

    value = _count(text)
    if not 1 <= value <= MAX_SHARDS:
        raise argparse.ArgumentTypeError(f"{value} is not from 1 to {MAX_SHARDS}")
    return value


def cmd_dags(args) -> int:
    from flowlink import dag_files
    from flowlink.airflow_adapter import dags_folder

    folder = Path(args.folder) if args.folder else dags_folder()
    done = dag_files.write(folder, dag_files.SHARDS if args.shards is None else args.shards)
    why = {
        dag_files.Action.REMOVED: "not part of this layout, replaced by the files above",
        dag_files.Action.LEFT: "a Flowlink file name that Flowlink did not write: left as it is",
    }
    for o in done:
        out.print(f"{o.action} {o.path}" + (f" ({why[o.action]})" if o.action in why else ""), markup=False)
    if any(o.action in (dag_files.Action.REMOVED, dag_files.Action.REPLACED) for o in done):
        out.print(
            "The workflows' DAGs moved to other files of this folder: restart the dag-processor so that it parses "
            "them now (else it finds the new files at its next scan, [dag_processor] refresh_interval).",
            markup=False,
        )
    return 0


def cmd_alert(args) -> int:
    from flowlink import alerts

    store = _store()
    if args.alert_command == "add":
        ch = alerts.add_channel(
            store,
            environment=args.environment,
            workflow=args.workflow,
            email=args.email,
            webhook=args.webhook,
            events=args.events,
            daily_summary=args.daily_summary,
            skip_empty_summary=not args.summary_when_empty,
        )
        out.print(f"alert channel {ch['id']} added: {alerts.describe(ch)}")
    elif args.alert_command == "remove":
        ch = alerts.remove_channel(store, args.id)
        out.print(f"alert channel {ch['id']} removed")
    else:
        rows = alerts.channels(store)
        if args.json:
            _print_json(rows)
            return 0
        _table(
            "Alert channels",
            ["id", "environment", "workflow", "kind", "target", "events", "daily summary"],
            [
                [
                    c["id"],
                    c["environment"],
                    c["workflow"],
                    c["kind"],
                    c["target"],
                    ", ".join(c["events"]) or "all",
                    ("yes" + ("" if c["skip_empty_summary"] else ", also when empty")) if c["daily_summary"] else "",
                ]
                for c in rows
            ],
        )
    return 0


def _seconds(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not more than 0 seconds")
    return value


def _wait_options(sp) -> None:
    sp.add_argument(
        "--wait",
        action="store_true",
        help="show progress until the run has ended; exit status 0 when it succeeded, 1 when it failed",
    )
    sp.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="with --wait: give up waiting after SECONDS (exit status 1; the run goes on)",
    )


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
    add("publish", cmd_publish, "publish a spec as a new version (deploying puts it live)").add_argument(
        "file", metavar="FILE"
    )
    add("workflows", cmd_workflows, "list live workflows and broken live files").add_argument(
        "--json", action="store_true"
    )
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
    which.add_argument(
        "--unprocessed",
        action="store_true",
        help="all Unprocessed records of the touchpoint whose last run has ended (Airflow's state "
        "success or failed, or a run Airflow no longer knows): those a failed run left behind; "
        "a run still queued or running may load its records yet",
    )
    which.add_argument("--id", nargs="+", metavar="ID", help="these source ids")
    _wait_options(sp)
    sp = add("runs", cmd_runs, "list the runs of a workflow with Airflow's state of each")
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
    sp = add(
        "purge",
        cmd_purge,
        "remove snapshots (with their batch files), Success bucket rows and feeds older than "
        "N days (FLOWLINK_RETENTION_DAYS, default 15)",
    )
    sp.add_argument(
        "--days", type=_days, metavar="N", help="keep the last N days (default: FLOWLINK_RETENTION_DAYS or 15)"
    )
    sp.add_argument("--dry-run", action="store_true", help="only show what would go")
    sp.add_argument("--json", action="store_true")
    sp = add(
        "agent", cmd_agent, "run the agent of an environment: carry out its deployments (stop with Ctrl-C or SIGTERM)"
    )
    sp.add_argument("--environment", required=True, metavar="NAME")
    sp.add_argument("--server", required=True, metavar="URL", help="e.g. http://127.0.0.1:8080/flowlink")
    sp.add_argument("--token-file", metavar="FILE", help="file holding the agent token (else FLOWLINK_AGENT_TOKEN)")
    sp.add_argument(
        "--install-dir",
        metavar="DIR",
        help="where workflows are installed (default: the live folder's ENVIRONMENT folder)",
    )
    sp.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="seconds between passes (default 2)")
    sp.add_argument(
        "--once", action="store_true", help="one pass, then exit (status 1 if the server could not be used)"
    )
    add("db-upgrade", cmd_db_upgrade, "create or migrate the Flowlink store")

    env = add("env", cmd_env, "environments: add, list, set, issue an agent token")
    env_sub = env.add_subparsers(dest="env_command", metavar="ACTION")
    sp = env_sub.add_parser("add", help="add an environment (the first one is primary)")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--kind", required=True, choices=["cloud", "on-premise"])
    sp.add_argument("--pending-timeout", type=_count, default=5, metavar="MINUTES", help="5 to 60, default 5")
    sp = env_sub.add_parser("list", help="list environments with their agents")
    sp.add_argument("--json", action="store_true")
    sp = env_sub.add_parser("set", help="change an environment")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--primary", action="store_true", help="make it the primary environment")
    sp.add_argument("--pending-timeout", type=_count, metavar="MINUTES")
    onoff = sp.add_mutually_exclusive_group()
    onoff.add_argument("--enable", dest="enabled", action="store_true", default=None)
    onoff.add_argument("--disable", dest="enabled", action="store_false")
    sp.add_argument(
        "--retry-max-tries",
        type=_count,
        metavar="N",
        help="tries of a failed record, the sync included (1-20, default 4)",
    )
    sp.add_argument(
        "--retry-wait",
        dest="retry_wait_minutes",
        type=_count,
        metavar="MINUTES",
        help="minutes a failed record waits before a retry (0-10080, default 60)",
    )
    sp.add_argument(
        "--retry-batch-size", type=_count, metavar="N", help="records per retry run (1-100000, default 500)"
    )
    sp.add_argument("--retry-every", choices=["hourly", "daily"], help="how often retry runs (default hourly)")
    sp = env_sub.add_parser(
        "token",
        help="issue an agent token (printed once), list the tokens or revoke one",
        description="Without options: issue a new agent token for NAME and print it (only its "
        "sha256 is stored). --list shows each token's id and fingerprint, never the token.",
    )
    sp.add_argument("name", metavar="NAME")
    which = sp.add_mutually_exclusive_group()
    which.add_argument(
        "--list", action="store_true", help="list the environment's tokens: id, fingerprint, created, revoked"
    )
    which.add_argument(
        "--revoke",
        metavar="TOKEN",
        help="revoke a token: its id, its fingerprint (8+ hex digits) or the "
        "token itself; refused from the next request on",
    )
    sp.add_argument("--json", action="store_true", help="with --list: JSON")
    env.set_defaults(env_command="list", json=False)

    sp = add("deploy", cmd_deploy, "deploy a published version to the primary environment")
    sp.add_argument("workflow", metavar="WORKFLOW")
    sp.add_argument("--version", type=_count)
    add("undeploy", cmd_undeploy, "remove a deployed workflow from its environment").add_argument(
        "workflow", metavar="WORKFLOW"
    )
    sp = add("run", cmd_run, "run a deployed workflow now")
    sp.add_argument("workflow", metavar="WORKFLOW")
    _wait_options(sp)
    sp = add(
        "check",
        cmd_check,
        "check a workflow's connections, tables, endpoints, files and fields against the "
        "applications; exit status 1 on any problem",
    )
    sp.add_argument(
        "workflow", metavar="SPEC|WORKFLOW", help="a spec file, or a published workflow (its newest version)"
    )
    sp.add_argument("--json", action="store_true")
    sp = add(
        "try",
        cmd_try,
        "run a touchpoint's mapping on live records of its source and show what the load would send, without "
        "sending it (no watermark, bucket or snapshot either); exit status 1 if a record fails",
    )
    sp.add_argument(
        "workflow", metavar="SPEC|WORKFLOW", help="a spec file, or a published workflow (its newest version)"
    )
    sp.add_argument("touchpoint", metavar="TOUCHPOINT")
    which = sp.add_mutually_exclusive_group()
    which.add_argument(
        "--limit",
        type=_limit,
        default=5,
        metavar="N",
        help="the newest N records by the touchpoint's incremental field (else the first N by its key); 1 to 100, "
        "default 5",
    )
    which.add_argument("--ids", nargs="+", metavar="ID", help="these records, by the touchpoint's source key")
    sp.add_argument("--json", action="store_true")
    sp = add("deployments", cmd_deployments, "the last deployment of each workflow")
    sp.add_argument("--environment")
    sp.add_argument("--json", action="store_true")
    sp = add("deployment-log", cmd_deployment_log, "the step log of a workflow's last deployment")
    sp.add_argument("workflow", metavar="WORKFLOW")
    sp.add_argument("--json", action="store_true")

    dags = add(
        "dags",
        cmd_dags,
        "Flowlink's DAGs in Airflow: `flowlink dags write` puts Flowlink's one-line DAG files "
        "into Airflow's DAGs folder (once; new workflows and upgrades need nothing more)",
    )
    dags_sub = dags.add_subparsers(dest="dags_command", metavar="ACTION", required=True)
    sp = dags_sub.add_parser(
        "write",
        help="write flowlink_dags.py (Flowlink's own DAGs) and, per shard, flowlink_workflows_NN.py (the live "
        "workflows) and flowlink_import_errors_NN.py into FOLDER; removes the files of earlier layouts",
    )
    sp.add_argument("folder", metavar="FOLDER", nargs="?", help="default: Airflow's [core] dags_folder")
    sp.add_argument(
        "--shards",
        type=_shards,
        metavar="K",
        help="spread the workflows over K files (1 to 100, default 16); another K moves workflows between files",
    )

    alert = add("alert", cmd_alert, "alert channels: e-mail or webhook, per environment or per workflow")
    alert_sub = alert.add_subparsers(dest="alert_command", metavar="ACTION")
    sp = alert_sub.add_parser("add", help="add a channel: a workflow's events go to its channels and its environment's")
    owner = sp.add_mutually_exclusive_group(required=True)
    owner.add_argument("--environment", metavar="ENV")
    owner.add_argument("--workflow", metavar="WORKFLOW")
    kind = sp.add_mutually_exclusive_group(required=True)
    kind.add_argument(
        "--email",
        metavar="ADDRESSES",
        help="a@example.com,b@example.com (sent through Airflow's SMTP "
        "connection, [email] email_conn_id or smtp_default)",
    )
    kind.add_argument(
        "--webhook",
        metavar="CONN_ID",
        help="an Airflow connection id: its host is the URL, its login/password or extra token the auth",
    )
    sp.add_argument(
        "--events",
        metavar="EVENTS",
        default="",
        help="comma separated, default all: run_failed, "
        "records_failed, deployment_unsuccessful, agent_disconnected, run_blocked",
    )
    sp.add_argument("--daily-summary", action="store_true", help="also a daily summary per workflow")
    sp.add_argument("--summary-when-empty", action="store_true", help="send the summary also when nothing ran")
    sp = alert_sub.add_parser("list", help="list the alert channels")
    sp.add_argument("--json", action="store_true")
    alert_sub.add_parser("remove", help="remove a channel").add_argument("id", metavar="ID", type=_count)
    alert.set_defaults(alert_command="list", json=False)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if getattr(args, "timeout", None) is not None and not args.wait:
        p.error("--timeout goes with --wait")
    # Airflow's own info and warning lines ("creating dag run", deprecations) are not this command's output
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
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
