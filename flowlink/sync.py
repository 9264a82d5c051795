"""The three steps of a touchpoint: extract -> transform -> load. No Airflow here: the operators call these.

Records travel as batch files (flowlink.staging); every record is tracked in the resync bucket; every step
leaves a row in the run's snapshot. The incremental watermark is saved only after the load it covers.

Faults: a batch's outcomes (bucket rows and data log) are written in one transaction after the batch is loaded,
so a store that fails mid-step leaves those records Unprocessed, never half-recorded, and the watermark unmoved;
the task fails and its retry (or the next run) loads them again, by key, so nothing is duplicated. A target error
on one record (a timeout, say) fails that record, not the batch; errors on several records in a row mean the
target is down and the load step fails. A step that fails as a whole (its connector cannot be opened, the target
is down, ...) is recorded as failed with its reason, and the records this run left Unprocessed carry it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypedDict

from lxml import etree
from sqlalchemy.exc import SQLAlchemyError

from flowlink import staging
from flowlink.connectors.base import (
    Action,
    ConnectorError,
    Record,
    Source,
    Target,
    Unreachable,
    Unreadable,
    WriteResult,
)
from flowlink.errors import FlowlinkError, plural
from flowlink.mapping import output_types
from flowlink.ordering import newer
from flowlink.publish import Artifact
from flowlink.recordxml import KEY, RecordReader, RecordWriter
from flowlink.spec import Extract, Touchpoint
from flowlink.states import RecordStatus, Step, StepFailure, StepStatus
from flowlink.store import Store, bucket, loads, snapshots, state
from flowlink.store.bucket import Outcome
from flowlink.store.state import Resync
from flowlink.transform import Transformed as TransformResult
from flowlink.transform import Transformer

DOWN_AFTER = 3  # target errors on this many records in a row: the target is down, not those records
log = logging.getLogger(__name__)


class RecordsFailed(FlowlinkError):
    """Some records failed; they are Failed in the resync bucket with their reasons. Retrying the task would not help."""


# What each step returns (the operators hand it on as the task's XCom, JSON) and the next step reads.
class Extracted(TypedDict):
    version: int  # the workflow version the run is pinned to
    batches: list[str]  # the batch files, in order
    count: int  # records written to them
    failed: int  # records that failed in extract
    watermark: Any  # the highest incremental value read (a JSON value); None for a resync or without incremental


class Transformed(TypedDict):
    version: int
    batches: list[str]
    count: int
    failed: int  # records that failed in extract and transform
    failed_in: dict[str, int]  # step -> records failed in it, steps with failures only
    watermark: Any  # the extract's, saved by the load
    fields: list[str] | None  # how the load reads the batches: by position (generate_xslt's shape), else by name
    local_names: bool  # namespaced names read as local names


class Loaded(TypedDict):
    version: int
    count: int  # records loaded


class Log(Protocol):
    """What a step logs to: a logging.Logger, or the task's logger in Airflow."""

    def info(self, msg: Any, /, *args: Any) -> Any: ...
    def warning(self, msg: Any, /, *args: Any) -> Any: ...
    def error(self, msg: Any, /, *args: Any) -> Any: ...


@dataclass
class RunContext:
    store: Store
    artifact: Artifact  # the version this run is pinned to
    run_id: str
    resync: Resync | None = None  # for a resync run: the touchpoint and the source ids chosen
    log: Log = log
    hostname: str | None = None  # the worker running the step, and its queue, for the snapshot
    queue: str | None = None

    @property
    def workflow(self) -> str:
        return self.artifact.workflow

    def takes_part(self, touchpoint: str) -> bool:
        """A resync run touches only the touchpoint whose records were chosen."""
        return self.resync is None or self.resync["touchpoint"] == touchpoint

    def folder(self, touchpoint: str, step: Step) -> Path:
        return staging.run_folder(self.workflow, self.run_id) / touchpoint / step


def _records(n: int) -> str:
    return plural(n, "record")


def _waiting(touchpoint: str, failed_in: dict[str, int], workflow: str) -> str:
    """'customers: 1 record failed in extract; it waits in the resync bucket (...)': how many failed in which step."""
    total = sum(failed_in.values())
    where = (
        f" in {next(iter(failed_in))}"
        if len(failed_in) == 1
        else " (" + ", ".join(f"{n} in {step}" for step, n in failed_in.items()) + ")"
    )
    return (
        f"{touchpoint}: {_records(total)} failed{where}; {'it waits' if total == 1 else 'they wait'} in the "
        f"resync bucket (flowlink bucket {workflow} --touchpoint {touchpoint} --status failed)"
    )


@contextmanager
def _step(ctx: RunContext, touchpoint: str, step: Step) -> Iterator[dict[str, Any]]:
    """Record the step in the snapshot: running, then success (its message tells of failed records) or failed.

    A step that fails as a whole (any exception but RecordsFailed: a connection that cannot be opened, the target
    down, the store lost, a bad batch file) is failure "step"; the records of the touchpoint that this run extracted
    and left Unprocessed get "run R: <step> failed: <the reason's first line>" in the bucket and the data log, in
    the transaction that records the failure."""
    snapshots.start_step(
        ctx.store,
        ctx.workflow,
        ctx.run_id,
        ctx.artifact.version,
        touchpoint,
        step,
        hostname=ctx.hostname,
        queue=ctx.queue,
    )
    stats: dict[str, Any] = {"count_in": 0, "count_out": 0, "count_failed": 0, "files": []}
    try:
        yield stats
    except BaseException as exc:
        reason = ctx.store.unavailable(exc) or exc  # the store itself failed: one line, not the driver's text
        message = str(reason).strip() or type(exc).__name__
        whole = not isinstance(exc, RecordsFailed)
        left = 0
        try:  # the store may be back already (a connection is retried for a while)
            with ctx.store.transaction() as conn:
                snapshots.finish_step(
                    ctx.store,
                    ctx.workflow,
                    ctx.run_id,
                    touchpoint,
                    step,
                    status=StepStatus.FAILED,
                    message=message,
                    failure=StepFailure.STEP if whole else StepFailure.RECORDS,
                    conn=conn,
                    **stats,
                )
                if whole:
                    left = bucket.left_behind(
                        conn,
                        ctx.workflow,
                        touchpoint,
                        ctx.run_id,
                        step,
                        f"run {ctx.run_id}: {step} failed: {message.splitlines()[0]}",
                    )
        except SQLAlchemyError as lost:
            ctx.log.error(
                "%s %s: the failure could not be recorded in the store: %s",
                touchpoint,
                step,
                ctx.store.unavailable(lost) or lost,
            )
        if left:
            ctx.log.error(
                "%s: %s of this run stay Unprocessed with the reason (flowlink resync %s --touchpoint %s "
                "--unprocessed)",
                touchpoint,
                _records(left),
                ctx.workflow,
                touchpoint,
            )
        raise
    failed = stats["count_failed"]
    snapshots.finish_step(
        ctx.store,
        ctx.workflow,
        ctx.run_id,
        touchpoint,
        step,
        status=StepStatus.SUCCESS,
        **stats,
        message=_waiting(touchpoint, {step: failed}, ctx.workflow) if failed else None,
    )


# What happens to one record in each step, and the message the bucket and the data log keep: said once, here, for
# a run and for a try (flowlink.trial).
NOT_FOUND = "not found in the source"  # a chosen id the source no longer has
NO_OUTPUT = "the stylesheet produced no record for it"  # Skipped


def with_key(spec: Extract, record: Record | Unreadable, where: str) -> Record | Unreadable:
    """The record as read, or an Unreadable in its place when it has no value for the key field."""
    if not isinstance(record, Unreadable) and record.get(spec.key) in (None, ""):
        return Unreadable(f"no value for the key field {spec.key!r}", where)
    return record


def unreadable(record: Unreadable) -> Outcome:
    """A record the source could not read or use: Failed, under its key or, without one, under "(<where>)"."""
    key, where = record.key, record.where
    sid = f"({where})" if key is None or key == "" else str(key)
    return Outcome(sid, RecordStatus.FAILED, message=f"extract: {where}: {record.reason}")


def unwritable(failures: list[tuple[str, str]]) -> list[Outcome]:
    """Records record XML cannot carry (RecordWriter's failures): Failed in extract."""
    return [Outcome(sid, RecordStatus.FAILED, message=f"extract: {problem}") for sid, problem in failures]


def transformed_outcomes(done: TransformResult) -> list[Outcome]:
    """The stylesheet's failures (Failed) and the records it produced nothing for (Skipped)."""
    produced = set(done.keys_out)
    failed = {k for k, _ in done.failures}
    outcomes = [Outcome(k, RecordStatus.FAILED, message=f"transform: {reason}") for k, reason in done.failures]
    outcomes += [
        Outcome(k, RecordStatus.SKIPPED, message=NO_OUTPUT)
        for k in done.keys_in
        if k not in produced and k not in failed
    ]
    return outcomes


def unfit_outcomes(unfit: list[tuple[str, str]]) -> list[Outcome]:
    """Output values that do not fit their type in the mapping (RecordReader's failures): Failed, as the transform's."""
    return [Outcome(k, RecordStatus.FAILED, message=f"transform: {reason}") for k, reason in unfit]


def extract(ctx: RunContext, tp: Touchpoint, open_source: Callable[[], Source]) -> Extracted:
    """Read new records (or the chosen ones for a resync) into batch files; they wait in the bucket as Unprocessed.

    The source is opened (``open_source()``) inside the step, and closed after it: a connection that is missing
    or cannot be used fails the step, in the snapshot.

    A record without a key, or one its source could not read (an Unreadable), is Failed in the bucket with the
    reason, under its key or, without one, under "(<where>)"; the others go on."""
    spec = tp.extract
    ids = ctx.resync["source_ids"] if ctx.resync else None
    since = state.watermark(ctx.store, ctx.workflow, tp.name) if spec.incremental and ids is None else None
    if ids is not None:
        ctx.log.info("%s: resync of %d chosen records", tp.name, len(ids))
    elif since is None:
        ctx.log.info("%s: full sync", tp.name)
    else:
        ctx.log.info("%s: records with %s after %s", tp.name, spec.incremental, since)
    folder = ctx.folder(tp.name, Step.EXTRACT)
    writer = RecordWriter(spec.key)
    high, seen = None, set()
    with _step(ctx, tp.name, Step.EXTRACT) as stats, closing(open_source()) as source:
        for n, batch in enumerate(source.read(spec, since=since, ids=ids, batch_size=tp.batch_size), 1):
            keyed, bad = [], []
            for i, record in enumerate(batch, 1):
                record = with_key(spec, record, f"batch {n}, record {i}")
                if isinstance(record, Unreadable):
                    bad.append(outcome := unreadable(record))
                    ctx.log.error("%s: source record %s failed: %s", tp.name, outcome.source_id, record.reason)
                    continue
                keyed.append(record)
                value = record.get(spec.incremental) if spec.incremental else None
                if value is not None and (high is None or newer(value, high)):
                    high = value
            written = writer.write(keyed)  # a record holding what XML cannot carry fails here, alone
            bad += unwritable(written.failures)
            for sid, problem in written.failures:
                ctx.log.error("%s: source record %s failed: %s", tp.name, sid, problem)
            path = folder / f"batch-{n:05d}.xml"
            staging.write_batch(path, written.document)
            keys = written.keys
            seen.update(keys)
            bucket.mark_unprocessed(ctx.store, ctx.workflow, tp.name, ctx.run_id, keys, resync=ids is not None)
            bucket.record(ctx.store, ctx.workflow, tp.name, ctx.run_id, Step.EXTRACT, bad)
            seen.update(o.source_id for o in bad)
            stats["count_failed"] += len(bad)
            stats["files"].append(str(path))
            stats["count_in"] += len(batch)
            stats["count_out"] += len(keys)
            ctx.log.info("%s: extracted batch %d: %d records (%d so far)", tp.name, n, len(keys), stats["count_out"])
        if ids is not None and (gone := [i for i in ids if i not in seen]):
            bucket.record(
                ctx.store,
                ctx.workflow,
                tp.name,
                ctx.run_id,
                Step.EXTRACT,
                [Outcome(i, RecordStatus.FAILED, message=NOT_FOUND) for i in gone],
            )
            stats["count_failed"] += len(gone)
            ctx.log.error("%s: %d chosen records are no longer in the source: %s", tp.name, len(gone), gone[:20])
    ctx.log.info("%s: extracted %d records in %d batches", tp.name, stats["count_out"], len(stats["files"]))
    return Extracted(
        version=ctx.artifact.version,
        batches=stats["files"],
        count=stats["count_out"],
        failed=stats["count_failed"],
        watermark=high if ids is None else None,
    )


NOTHING_NEW = "skipped: the extract found no new records"  # the snapshot's message for the steps an idle run skips


def nothing_new(extracted: Extracted) -> bool:
    """The extract found no record (none read, none failed): transform and load would have nothing to do; no
    watermark to save, nothing to record in the bucket. A resync whose chosen records are gone has failed ones."""
    return extracted["count"] == 0 and extracted["failed"] == 0 and extracted["watermark"] is None


def skip_rest(ctx: RunContext, tp: Touchpoint, steps: list[Step]) -> None:
    """Record the steps after an extract that found nothing new as skipped in the run's snapshot (counts 0); the
    caller makes sure they do not run."""
    snapshots.skipped_steps(ctx.store, ctx.workflow, ctx.run_id, ctx.artifact.version, tp.name, steps, NOTHING_NEW)
    ctx.log.info("%s: nothing new; %s skipped", tp.name, " and ".join(steps))


def transform(ctx: RunContext, tp: Touchpoint, transformer: Transformer, extracted: Extracted) -> Transformed:
    """Apply the touchpoint's stylesheet batch by batch; a record that fails is Failed, the others go on."""
    folder = ctx.folder(tp.name, Step.TRANSFORM)
    with _step(ctx, tp.name, Step.TRANSFORM) as stats:
        for n, src in enumerate(extracted["batches"], 1):
            try:
                done = transformer.transform(staging.read_batch(src))
            except etree.XMLSyntaxError as exc:
                raise FlowlinkError(f"{src}: not a batch file of record XML ({exc})") from None
            path = folder / f"batch-{n:05d}.xml"
            staging.write_batch(path, done.document)
            outcomes = transformed_outcomes(done)
            bucket.record(ctx.store, ctx.workflow, tp.name, ctx.run_id, Step.TRANSFORM, outcomes)
            for k, reason in done.failures:
                ctx.log.warning("%s: record %s failed in transform: %s", tp.name, k, reason)
            stats["files"].append(str(path))
            stats["count_in"] += len(done.keys_in)
            stats["count_out"] += len(done.keys_out)
            stats["count_failed"] += len(done.failures)
            ctx.log.info(
                "%s: transformed batch %d: %d in, %d out, %d failed",
                tp.name,
                n,
                len(done.keys_in),
                len(done.keys_out),
                len(done.failures),
            )
    failed_in: dict[str, int] = {Step.EXTRACT: extracted["failed"], Step.TRANSFORM: stats["count_failed"]}
    return Transformed(
        version=ctx.artifact.version,
        batches=stats["files"],
        count=stats["count_out"],
        failed=sum(failed_in.values()),
        failed_in={k: n for k, n in failed_in.items() if n},
        watermark=extracted["watermark"],
        fields=list(transformer.fields) if transformer.fields else None,
        local_names=transformer.local_names,
    )


def _write(
    ctx: RunContext, tp: Touchpoint, target: Target, records: list[dict], destination_ids: list[str | None]
) -> list[WriteResult]:
    """Write one batch. If the target raises (a whole-application error), write the records one at a time to tell
    a record's problem from the target's: a record whose write raises (a timeout on it, say) gets a failed result
    with the reason; DOWN_AFTER such records in a row (or the whole batch, if smaller) raise: the target is down.
    Records written before the error are written again: upsert is by key, insert reports them as existing,
    create_or_update finds them with its match. A target that cannot be connected to (Unreachable, after
    FLOWLINK_UNREACHABLE_AFTER seconds) fails the step at once: one record at a time would not reach it either."""
    try:
        return target.write(tp.load, records, destination_ids)
    except Unreachable:
        raise
    except ConnectorError as exc:
        ctx.log.warning("%s: the batch could not be written (%s); writing its records one at a time", tp.name, exc)
    results: list[WriteResult] = []
    streak = 0
    for record, destination_id in zip(records, destination_ids, strict=True):
        try:
            results += target.write(tp.load, [record], [destination_id])
            streak = 0
        except ConnectorError as exc:
            streak += 1
            if streak == min(DOWN_AFTER, len(records)):
                raise
            results.append(WriteResult(key=str(record.get(tp.load.key, "")), ok=False, error=str(exc)))
    return results


def load(ctx: RunContext, tp: Touchpoint, open_target: Callable[[], Target], transformed: Transformed) -> Loaded:
    """Write each batch; record every result; save the watermark once everything it covers is committed.

    The target is opened (``open_target()``) inside the step and closed after it, as extract's source.

    A later try of the step in the same run does not write again what an earlier try loaded (recorded in the
    bucket batch by batch); it writes the rest. Only the batch being written when the earlier try stopped may have
    reached the target without being recorded: with upsert, writing it again is harmless; with insert, a record of
    that batch which the target says exists already was created by the earlier try, and counts as loaded; with
    create_or_update, the match finds what it created, and updates it. For create_or_update the destination ids the
    bucket keeps go to the target with their records (it updates by them); every load keeps the ids it is given."""
    earlier = loads.earlier_tries(ctx.store, ctx.workflow, ctx.run_id, tp.name)
    reader = RecordReader(output_types(tp), transformed["fields"], transformed["local_names"])
    with _step(ctx, tp.name, Step.LOAD) as stats, closing(open_target()) as target:
        batches = transformed["batches"]
        in_doubt = earlier is not None  # until the first batch the earlier tries did not record in full
        for n, src in enumerate(batches, 1):
            try:
                records, unfit = reader.read(staging.read_batch(src))
            except etree.XMLSyntaxError as exc:
                raise FlowlinkError(f"{src}: not a batch file of record XML ({exc})") from None
            keys = [r.pop(KEY) for r in records]
            done = {k for k in keys if earlier and earlier.get(k) == RecordStatus.SUCCESS}
            doubtful: set[str] = set()
            if earlier is not None and in_doubt and any(k not in earlier for k in keys):
                in_doubt = False
                if tp.load.method == "insert":
                    doubtful = {k for k in keys if k not in earlier}
            todo = [(k, r) for k, r in zip(keys, records, strict=True) if k not in done]
            by_id = tp.load.method == "create_or_update"  # the only mode that writes by the target's own id
            known = (
                bucket.destination_ids(ctx.store, ctx.workflow, tp.name, [k for k, _ in todo]) if todo and by_id else {}
            )
            results = _write(ctx, tp, target, [r for _, r in todo], [known.get(k) for k, _ in todo]) if todo else []
            # a value that does not fit its type in the mapping: the transform's output, found as it is read here
            outcomes = unfit_outcomes(unfit)
            for (k, _), r in zip(todo, results, strict=True):
                if r.ok:
                    outcomes.append(Outcome(k, RecordStatus.SUCCESS, destination_id=r.destination_id))
                elif k in doubtful and r.exists:
                    outcomes.append(
                        Outcome(
                            k,
                            RecordStatus.SUCCESS,
                            message="already in the target: created by an interrupted try of this run",
                        )
                    )
                else:
                    outcomes.append(Outcome(k, RecordStatus.FAILED, message=r.error))
            bucket.record(ctx.store, ctx.workflow, tp.name, ctx.run_id, Step.LOAD, outcomes)
            failed = [o for o in outcomes if o.status == RecordStatus.FAILED]
            for o in failed:
                ctx.log.warning("%s: record %s was rejected by the target: %s", tp.name, o.source_id, o.message)
            if done:
                ctx.log.info(
                    "%s: batch %d: %d records already loaded by an earlier try of this run", tp.name, n, len(done)
                )
            if actions := [r.action for r in results if r.ok and r.action]:
                ctx.log.info(
                    "%s: batch %d: %d created, %d updated",
                    tp.name,
                    n,
                    actions.count(Action.CREATED),
                    actions.count(Action.UPDATED),
                )
            stats["files"].append(src)
            stats["count_in"] += len(records) + len(unfit)
            stats["count_out"] += len(records) + len(unfit) - len(failed)
            stats["count_failed"] += len(failed)
            ctx.log.info(
                "%s: loaded batch %d/%d: %d records, %d failed",
                tp.name,
                n,
                len(batches),
                len(records) + len(unfit) - len(failed),
                len(failed),
            )
        mark = transformed["watermark"]
        if mark is not None and ctx.resync is None:
            old = state.watermark(ctx.store, ctx.workflow, tp.name)
            if old is None or newer(mark, old):
                state.save_watermark(ctx.store, ctx.workflow, tp.name, mark, ctx.run_id)
                ctx.log.info("%s: watermark moved to %s", tp.name, mark)
        ctx.log.info(
            "%s: %d loaded, %d failed in load, %d failed before",
            tp.name,
            stats["count_out"],
            stats["count_failed"],
            transformed["failed"],
        )
        failed_in = dict(transformed["failed_in"])
        if stats["count_failed"]:
            failed_in[Step.LOAD] = stats["count_failed"]
        if failed_in:
            raise RecordsFailed(_waiting(tp.name, failed_in, ctx.workflow))
    return Loaded(version=ctx.artifact.version, count=stats["count_out"])
