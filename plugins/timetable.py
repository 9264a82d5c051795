"""WorkflowTimetable: runs a workflow at the ticks of its `Schedule` (see flowlink.schedule);
ManualTimetable: a manual workflow, never scheduled.

Registered by the plugin (flowlink_airflow.plugin). Airflow stores their class paths with every serialized DAG:
``flowlink_airflow.timetable.WorkflowTimetable`` and ``flowlink_airflow.timetable.ManualTimetable``, stable
across releases.

Each run is exact: data interval start = end = logical date = the tick. The schedule
itself is the serialized form (``Schedule.model_dump(mode="json")``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pendulum
from airflow.timetables.base import DagRunInfo, DataInterval, Timetable

from flowlink.schedule import Ticks, summary
from flowlink.spec import Schedule

if TYPE_CHECKING:
    import datetime as dt

    from airflow.timetables.base import TimeRestriction
    from pendulum import DateTime


def utcnow() -> DateTime:
    """The current time; tests monkeypatch this."""
    return pendulum.now("UTC")


def _pendulum(t: dt.datetime) -> DateTime:
    return pendulum.instance(t).in_timezone("UTC")


class ManualTimetable(Timetable):
    """A manual workflow: never scheduled, it runs when started (flowlink run, Airflow's trigger). Airflow's DAG list
    shows its summary, "Manual" (schedule=None leaves the Schedule cell empty)."""

    can_be_scheduled = False
    periodic = False
    description = "Manual: runs only when started"

    @property
    def summary(self) -> str:
        return "Manual"

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> ManualTimetable:
        return cls()

    def serialize(self) -> dict[str, Any]:
        return {}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self).__name__)

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        return DataInterval.exact(run_after)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        return None


class WorkflowTimetable(Timetable):
    """The ticks of an automatic workflow schedule; ends after the schedule's occurrences."""

    def __init__(self, schedule: Schedule):
        if schedule.sync != "auto":
            raise ValueError("a manual schedule has no ticks: give the DAG ManualTimetable()")
        self.schedule = schedule
        self.ticks = Ticks(schedule)
        self.description = summary(schedule)

    @classmethod
    def from_schedule(cls, schedule: Schedule) -> WorkflowTimetable:
        return cls(schedule)

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> WorkflowTimetable:
        return cls(Schedule.model_validate(data))

    def serialize(self) -> dict[str, Any]:
        return self.schedule.model_dump(mode="json")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.schedule == self.schedule

    def __hash__(self) -> int:
        return hash(self.schedule)  # a frozen model: Airflow hashes timetables often while building a DAG

    def __repr__(self) -> str:
        return f"WorkflowTimetable({self.description!r})"

    @property
    def summary(self) -> str:
        return self.description

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        return DataInterval.exact(run_after)

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
    ) -> DagRunInfo | None:
        ticks, earliest, last = self.ticks, restriction.earliest, last_automated_data_interval
        if last is not None:
            after_last = ticks.next_tick_after(last.end)
            if after_last is None:  # all occurrences used up
                return None
        if restriction.catchup:
            tick = after_last if last is not None else ticks.first_tick_at_or_after(earliest or ticks.start or utcnow())
        else:  # like CronTriggerTimetable: skip missed ticks, run the latest one that is due
            now = utcnow()
            candidates = [ticks.last_tick_at_or_before(now)]
            if last is not None:
                candidates.append(after_last)
            elif earliest is None:
                candidates.append(ticks.first_tick_at_or_after(ticks.start or now))
            if earliest is not None:
                candidates.append(ticks.first_tick_at_or_after(earliest))
            tick = max((c for c in candidates if c is not None), default=None)
        if tick is None:
            return None
        if earliest is not None and tick < earliest:  # the occurrences ended before the start date
            return None
        if restriction.latest is not None and tick > restriction.latest:
            return None
        return DagRunInfo.exact(_pendulum(tick))
