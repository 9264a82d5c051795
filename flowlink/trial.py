"""`flowlink try`: a touchpoint's mapping on live sample records, before it is published or deployed.

A try reads at most :data:`MAX_LIMIT` records through the touchpoint's real source connector: the newest ones
(``Source.newest``), or chosen ids (read as a resync reads them). It runs them through the touchpoint's stylesheet
with the run's own parts (``RecordWriter``, ``Transformer``, ``RecordReader``) and gives each record the message a
run would give (flowlink.sync says them), and it says what the load would send (REST: method, path and body; SQL:
the table and the statement kind; file: the file and the row) without sending it.

Nothing is written: no batch file, no bucket or data-log row, no snapshot, no watermark. The target is never opened
(a create_or_update's destination ids come from the bucket, read only). The result is plain dataclasses whose
:meth:`Trial.as_dict` is JSON, for the CLI, a page and an Airflow task alike: :func:`subject` says what is tried,
:func:`try_touchpoint` tries it with a way to open the source (:func:`source_from_connection` outside a task, the
ApplicationHook inside one).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flowlink.connectors.base import ConnectorError, Record, Source, Unreadable, dotted, json_safe
from flowlink.errors import FlowlinkError, plural
from flowlink.mapping import output_types
from flowlink.recordxml import KEY, key_text
from flowlink.spec import Application, Touchpoint, Workflow
from flowlink.states import RecordStatus, Step, TrialStatus
from flowlink.store.bucket import Outcome
from flowlink.sync import NOT_FOUND, transformed_outcomes, unfit_outcomes, unreadable, unwritable, with_key
from flowlink.transform import Transformer

DEFAULT_LIMIT = 5
MAX_LIMIT = 100  # records (or ids) in one try

DestinationIds = Callable[[list[str]], dict[str, str]]  # source ids -> their ids in the target, as the bucket keeps


@dataclass(frozen=True)
class Subject:
    """What is tried: one touchpoint of a spec draft or of a published version, with the stylesheet it runs."""

    workflow: str
    version: int | None  # None: a spec file, not published
    touchpoint: Touchpoint
    stylesheet: str
    source: Application
    target: Application


def subject(spec_or_name: str, touchpoint: str) -> Subject:
    """A touchpoint of a spec file (validated: SpecError names each problem at its YAML path) or of the newest
    published version of a workflow name, resolved as ``flowlink check`` resolves it."""
    from flowlink import publish
    from flowlink.mapping import stylesheet_for
    from flowlink.spec import load_spec

    if Path(spec_or_name).is_file() or spec_or_name.endswith((".yaml", ".yml")):
        wf = load_spec(spec_or_name)
        tp = touchpoint_of(wf, touchpoint)
        return Subject(wf.name, None, tp, stylesheet_for(tp, Path(spec_or_name).parent), wf.source, wf.target)
    if not publish.versions(spec_or_name):
        raise FlowlinkError(f"{spec_or_name!r} is neither a spec file nor a published workflow")
    art = publish.published(spec_or_name)
    wf = art.workflow_model()
    tp = touchpoint_of(wf, touchpoint)
    return Subject(wf.name, art.version, tp, art.stylesheets[tp.name], wf.source, wf.target)


def touchpoint_of(wf: Workflow, name: str) -> Touchpoint:
    names = [tp.name for tp in wf.touchpoints]
    if name not in names:
        raise FlowlinkError(f"workflow {wf.name!r} has no touchpoint {name!r} (it has: {', '.join(names)})")
    return wf.touchpoint(name)


def source_from_connection(app: Application) -> Source:
    """The application's source connector from its Airflow connection, read as Airflow's servers read it (outside a
    task). An application that cannot be reached is said at once, not tried again for FLOWLINK_UNREACHABLE_AFTER
    seconds as in a run; a SQLite file that does not exist is not created."""
    from flowlink.airflow_adapter import connection

    fields = connection(app.connection)
    if fields is None:
        raise ConnectorError(
            f"Airflow has no connection {app.connection!r}: add it (airflow connections add {app.connection} "
            "--conn-json '...') or correct source.connection in the spec"
        )
    settings = asdict(fields)
    if app.type == "sql":
        from flowlink.connectors.sql import SqlSource, missing_sqlite_file, sql_url_from_connection

        url = sql_url_from_connection(**settings)
        if problem := missing_sqlite_file(url):
            raise ConnectorError(f"connection {app.connection!r}: {problem}")
        return SqlSource(url, unreachable_after=0)
    if app.type == "rest":
        from flowlink.connectors.rest import RestSource, rest_settings_from_connection

        try:
            return RestSource(**{**rest_settings_from_connection(**settings), "unreachable_after": 0})
        except (TypeError, ValueError) as exc:
            raise ConnectorError(
                f"connection {app.connection!r}: unusable connection settings ({type(exc).__name__})"
            ) from None
    from flowlink.connectors.file import FileSource, folder_from_connection

    return FileSource(folder_from_connection(settings["host"], settings["extra"]))


# ------------------------------------------------------------------ the result


@dataclass(frozen=True)
class Request:
    """What the load would send for one output record; nothing is sent."""

    target: str  # the target's type: rest, sql or file
    method: str  # REST: PUT, PATCH or POST; SQL and file: upsert or insert (load.method)
    where: str  # REST: the path below the target connection's URL; SQL: the table; file: the file in the folder
    body: dict[str, Any]  # the record as the load sends it
    note: str = ""  # how it is written: the SQL statement, a create_or_update's look-up


@dataclass(frozen=True)
class TrialRecord:
    """One sample record: its source fields, the stylesheet's output, and what a run would do with it."""

    key: str  # the source key, as the bucket would keep it ("(<where>)" for a record without one)
    status: TrialStatus
    step: Step | None  # where it failed or was skipped
    message: str | None  # the run's message for it (the bucket's and the data log's)
    source: Record | None  # the fields as read; None when the source could not read it or has no such id
    output: list[dict[str, Any]] = field(default_factory=list)  # typed, as the load reads them (usually one)
    requests: list[Request] = field(default_factory=list)  # one per output record, when it is ready


@dataclass(frozen=True)
class Trial:
    workflow: str
    version: int | None  # the published version tried; None for a spec file
    touchpoint: str
    source: str  # "sql source demo_erp: table customers"
    chosen: str  # "the newest 5 by updated_at", "ids 3, 8"
    stylesheet: str
    records: list[TrialRecord]

    def count(self, status: TrialStatus) -> int:
        return sum(1 for r in self.records if r.status is status)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serializable (the statuses and steps are strings)."""
        return asdict(self)


# ------------------------------------------------------------------ the try


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise FlowlinkError(f"the limit must be 1 to {MAX_LIMIT} records, got {limit}")
    return limit


def try_touchpoint(
    subject: Subject,
    open_source: Callable[[], Source],
    *,
    limit: int = DEFAULT_LIMIT,
    ids: list[str] | None = None,
    destination_ids: DestinationIds | None = None,
) -> Trial:
    """Read the sample (the newest ``limit`` records, or ``ids``), transform it and describe its load.

    ``open_source()`` gives the source connector (closed here). ``destination_ids`` (create_or_update only): the
    bucket's ids in the target of the given source ids; without it every record is looked up as a new one would be.
    Raises FlowlinkError for a bad limit or ids, a stylesheet that cannot be compiled, and (ConnectorError) a source
    that cannot be read, as a run's extract step would fail."""
    tp, spec = subject.touchpoint, subject.touchpoint.extract
    if ids is not None:
        ids = list(dict.fromkeys(str(i) for i in ids))
        if not ids or len(ids) > MAX_LIMIT:
            raise FlowlinkError(f"give 1 to {MAX_LIMIT} ids, got {len(ids)}")
    else:
        check_limit(limit)
    transformer = Transformer(subject.stylesheet, output_types(tp), spec.key)  # a broken stylesheet: before reading
    with closing(open_source()) as source:
        if ids is None:
            sample = source.newest(spec, limit)
        else:
            sample = [
                r for batch in source.read(spec, ids=ids, batch_size=min(tp.batch_size, MAX_LIMIT)) for r in batch
            ]

    # extract, as sync.extract: records without a key, ones the source could not read, ones XML cannot carry
    records: dict[str, TrialRecord] = {}  # by source key, in the sample's order
    sources: dict[str, Record] = {}
    keyed: list[Record] = []
    for i, record in enumerate(sample, 1):
        record = with_key(spec, record, f"record {i}")
        if isinstance(record, Unreadable):
            outcome = unreadable(record)
            records[outcome.source_id] = _failed(outcome, Step.EXTRACT, None)
            continue
        sources[key_text(record[spec.key])] = record
        records[key_text(record[spec.key])] = TrialRecord(
            key_text(record[spec.key]), TrialStatus.READY, None, None, record
        )
        keyed.append(record)
    written = transformer.writer.write(keyed)
    for outcome in unwritable(written.failures):
        records[outcome.source_id] = _failed(outcome, Step.EXTRACT, sources.get(outcome.source_id))

    # transform, as sync.transform, and the output read as sync.load reads it
    done = transformer.transform(written.document)
    for outcome in transformed_outcomes(done):
        records[outcome.source_id] = _failed(outcome, Step.TRANSFORM, sources.get(outcome.source_id))
    rows, unfit = transformer.reader.read(done.document)
    for outcome in unfit_outcomes(unfit):
        records[outcome.source_id] = _failed(outcome, Step.TRANSFORM, sources.get(outcome.source_id))
    outputs: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        outputs.setdefault(row.pop(KEY), []).append(row)

    # load, described
    known: dict[str, str] = {}
    if tp.load.method == "create_or_update" and destination_ids is not None and outputs:
        known = destination_ids(list(outputs))
    for key, sampled in list(records.items()):
        if sampled.status is not TrialStatus.READY:
            continue
        out = outputs.get(key, [])
        requests: list[Request] = []
        problem: str | None = None
        for row in out:
            request = _request(subject.target, tp, row, known.get(key))
            if isinstance(request, str):
                problem = request
                break
            requests.append(request)
        if problem is not None:
            records[key] = TrialRecord(key, TrialStatus.FAILED, Step.LOAD, problem, sampled.source, out)
        else:
            records[key] = TrialRecord(key, TrialStatus.READY, None, None, sampled.source, out, requests)

    found = list(records.values())
    if ids is not None:  # the order asked for; the ids the source does not have fail as in a resync
        order = {i: n for n, i in enumerate(ids)}
        found.sort(key=lambda r: order.get(r.key, len(order)))
        seen = set(records)
        found += [TrialRecord(i, TrialStatus.FAILED, Step.EXTRACT, NOT_FOUND, None) for i in ids if i not in seen]
        chosen = f"{plural(len(ids), 'id')}: {', '.join(ids)}"
    elif spec.incremental:
        chosen = f"the newest {plural(limit, 'record')} by {spec.incremental}"
    else:
        chosen = f"the first {plural(limit, 'record')} by {spec.key}"
    return Trial(
        subject.workflow,
        subject.version,
        tp.name,
        f"{subject.source.type} source {subject.source.connection}: {_what(spec)}",
        chosen,
        subject.stylesheet,
        found,
    )


def _failed(outcome: Outcome, step: Step, source: Record | None) -> TrialRecord:
    status = TrialStatus.SKIPPED if outcome.status == RecordStatus.SKIPPED else TrialStatus.FAILED
    return TrialRecord(outcome.source_id, status, step, outcome.message, source)


def _what(spec: Any) -> str:
    for kind in ("table", "query", "endpoint", "file"):
        if value := getattr(spec, kind):
            return f"{kind} {value}" if kind != "query" else "the query"
    return "?"


NO_KEY = "the record has no value for the key field {!r}"  # the targets' message for a record without its load key


def _request(target: Application, tp: Touchpoint, row: dict[str, Any], known: str | None) -> Request | str:
    """What the load would send for one output record, or the message its target would fail it with."""
    load = tp.load
    try:
        body = json_safe(row)
    except ConnectorError as exc:
        return str(exc)
    if target.type == "rest":
        from flowlink.connectors.rest import look_up_path, write_request

        key = dotted(row, load.key)
        if key is None or key == "":
            return NO_KEY.format(load.key)
        method, where = write_request(load, str(key), known)
        note = ""
        if load.method == "create_or_update" and known is None and load.match is not None:
            if missing := next((f for f in load.match.fields if dotted(row, f) in (None, "")), None):
                return f"the record has no value for {missing!r}, which load.match.endpoint needs to look it up"
            update = (load.update or "put").upper()
            note = (
                f"first GET {look_up_path(load.match, row)}: a record found is updated ({update} "
                f"{where}/<its {load.id_field}>), none found is created ({method} {where})"
            )
        elif load.method == "create_or_update":
            note = "updated by the destination id an earlier load recorded"
        return Request("rest", method, where, body, note)
    if row.get(load.key) is None:
        return NO_KEY.format(load.key)
    if target.type == "sql":
        action = (
            "DO UPDATE the columns it carries" if load.method == "upsert" else "DO NOTHING (an existing key fails it)"
        )
        note = f"INSERT INTO {load.table} ... ON CONFLICT ({load.key}) {action}"
        return Request("sql", load.method, load.table or "", body, note)
    note = (
        f"merged into {load.file} by {load.key}"
        if load.method == "upsert"
        else f"added to {load.file} unless {load.key} is there already"
    )
    return Request("file", load.method, load.file or "", body, note)
