"""The schedule arithmetic (flowlink.schedule) and its Airflow timetable (plugins/timetable.py, flowlink_airflow.timetable)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pendulum
import pytest
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction

from flowlink.schedule import Ticks, summary
from flowlink.spec import Schedule
from flowlink_airflow import timetable as flowlink_timetable
from flowlink_airflow.timetable import WorkflowTimetable

UTC = dt.UTC


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def auto(**kw) -> Schedule:
    return Schedule(sync="auto", **kw)


def walk(ticks: Ticks, t: dt.datetime, n: int) -> list[dt.datetime | None]:
    """The first tick at or after t, then n - 1 more via next_tick_after."""
    out = [ticks.first_tick_at_or_after(t)]
    while len(out) < n and out[-1] is not None:
        out.append(ticks.next_tick_after(out[-1]))
    return out


# --- flowlink.schedule -------------------------------------------------------------------


def test_every_n_minutes_from_start():
    ticks = Ticks(auto(repeat="every_minute", interval=15, start=dt.datetime(2026, 1, 1, 9, 5)))
    assert walk(ticks, utc(2025, 1, 1), 3) == [utc(2026, 1, 1, 9, 5), utc(2026, 1, 1, 9, 20), utc(2026, 1, 1, 9, 35)]
    assert ticks.first_tick_at_or_after(utc(2026, 1, 1, 9, 21)) == utc(2026, 1, 1, 9, 35)
    assert ticks.first_tick_at_or_after(utc(2026, 1, 1, 9, 35)) == utc(2026, 1, 1, 9, 35)
    assert ticks.next_tick_after(utc(2026, 1, 1, 9, 35)) == utc(2026, 1, 1, 9, 50)
    assert ticks.last_tick_at_or_before(utc(2026, 1, 1, 9, 49, 59)) == utc(2026, 1, 1, 9, 35)
    assert ticks.last_tick_at_or_before(utc(2026, 1, 1, 9, 4)) is None  # before the start
    assert ticks.index(utc(2026, 1, 1, 9, 35)) == 2


def test_every_n_minutes_without_start_is_cron_aligned():
    ticks = Ticks(auto(repeat="every_minute", interval=7))
    assert walk(ticks, utc(2026, 5, 4, 10, 50), 3) == [
        utc(2026, 5, 4, 10, 56),
        utc(2026, 5, 4, 11, 0),
        utc(2026, 5, 4, 11, 7),
    ]
    assert ticks.last_tick_at_or_before(utc(2026, 5, 4, 11, 6, 59)) == utc(2026, 5, 4, 11, 0)
    every = Ticks(auto(repeat="every_minute"))
    assert walk(every, utc(2026, 5, 4, 10, 0, 0, 1), 2) == [utc(2026, 5, 4, 10, 1), utc(2026, 5, 4, 10, 2)]


def test_every_n_minutes_aligned_to_local_clock():
    """Kathmandu is UTC+05:45: local :00/:15/:30/:45 are UTC :15/:30/:45/:00."""
    ticks = Ticks(auto(repeat="every_minute", interval=30, timezone="Asia/Kathmandu"))
    assert walk(ticks, utc(2026, 5, 4, 10, 0), 3) == [
        utc(2026, 5, 4, 10, 15),
        utc(2026, 5, 4, 10, 45),
        utc(2026, 5, 4, 11, 15),
    ]


def test_every_n_hours_from_start_counts_elapsed_time_over_dst():
    ticks = Ticks(auto(repeat="hourly", interval=2, start=dt.datetime(2026, 3, 28, 23, 0), timezone="Europe/Berlin"))
    local = [t.astimezone(ticks.tz).strftime("%d %H:%M%z") for t in walk(ticks, utc(2026, 1, 1), 4)]
    assert local == ["28 23:00+0100", "29 01:00+0100", "29 04:00+0200", "29 06:00+0200"]


def test_every_n_hours_without_start_follows_the_local_clock():
    ticks = Ticks(auto(repeat="hourly", interval=2, timezone="Europe/Berlin"))
    # clocks go back on 2026-10-25 03:00 CEST -> 02:00 CET: 02:00 happens twice, both tick
    fall = [t.astimezone(ticks.tz).strftime("%H:%M%z") for t in walk(ticks, utc(2026, 10, 24, 21, 30), 5)]
    assert fall == ["00:00+0200", "02:00+0200", "02:00+0100", "04:00+0100", "06:00+0100"]
    # clocks go forward on 2026-03-29 02:00 CET -> 03:00 CEST: 02:00 does not exist
    spring = [t.astimezone(ticks.tz).strftime("%H:%M%z") for t in walk(ticks, utc(2026, 3, 28, 22, 30), 3)]
    assert spring == ["00:00+0100", "04:00+0200", "06:00+0200"]
    assert ticks.last_tick_at_or_before(utc(2026, 3, 29, 1, 59)) == utc(2026, 3, 28, 23, 0)  # 00:00 CET
    assert ticks.first_tick_at_or_after(utc(2026, 5, 4, 13, 1)) == utc(2026, 5, 4, 14, 0)  # 16:00 CEST


def test_daily_at_a_time_over_dst_in_berlin():
    ticks = Ticks(auto(repeat="daily", at="06:30", timezone="Europe/Berlin"))
    # 06:30 local every day: 05:30 UTC in winter, 04:30 UTC in summer (from 2026-03-29)
    assert walk(ticks, utc(2026, 3, 27, 12), 3) == [
        utc(2026, 3, 28, 5, 30),
        utc(2026, 3, 29, 4, 30),
        utc(2026, 3, 30, 4, 30),
    ]
    assert walk(ticks, utc(2026, 10, 24, 12), 2) == [utc(2026, 10, 25, 5, 30), utc(2026, 10, 26, 5, 30)]
    assert ticks.last_tick_at_or_before(utc(2026, 3, 29, 4, 29)) == utc(2026, 3, 28, 5, 30)
    assert ticks.last_tick_at_or_before(utc(2026, 3, 29, 4, 30)) == utc(2026, 3, 29, 4, 30)


def test_daily_at_a_time_skipped_or_repeated_by_dst():
    ticks = Ticks(auto(repeat="daily", at="02:30", timezone="Europe/Berlin"))
    # 2026-03-29 02:30 does not exist: the run is an hour later (03:30 CEST = 01:30 UTC)
    spring = walk(ticks, utc(2026, 3, 28, 0), 3)
    assert spring == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]
    assert [t.astimezone(ticks.tz).strftime("%H:%M") for t in spring] == ["02:30", "03:30", "02:30"]
    # 2026-10-25 02:30 happens twice: one run, at the first (CEST)
    assert walk(ticks, utc(2026, 10, 24, 12), 2) == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_daily_with_start_and_occurrences():
    # start after 06:30 on its day: the first run is the next day
    ticks = Ticks(
        auto(
            repeat="daily",
            at="06:30",
            timezone="Europe/Berlin",
            start=dt.datetime(2026, 3, 27, 8, 0),
            end="after",
            occurrences=3,
        )
    )
    expected = [utc(2026, 3, 28, 5, 30), utc(2026, 3, 29, 4, 30), utc(2026, 3, 30, 4, 30)]
    assert walk(ticks, utc(2020, 1, 1), 4) == expected + [None]
    assert [ticks.tick(k) for k in range(3)] == expected
    assert ticks.index(expected[2]) == 2
    assert ticks.first_tick_at_or_after(utc(2026, 3, 30, 4, 31)) is None
    assert ticks.last_tick_at_or_before(utc(2030, 1, 1)) == expected[2]
    assert ticks.last_tick_at_or_before(utc(2026, 3, 28, 5, 29)) is None


def test_end_after_n_occurrences():
    ticks = Ticks(auto(repeat="every_minute", interval=10, start=dt.datetime(2026, 1, 1), end="after", occurrences=3))
    assert walk(ticks, utc(2020, 1, 1), 4) == [
        utc(2026, 1, 1, 0, 0),
        utc(2026, 1, 1, 0, 10),
        utc(2026, 1, 1, 0, 20),
        None,
    ]
    assert ticks.next_tick_after(utc(2026, 1, 1, 0, 20)) is None
    assert ticks.last_tick_at_or_before(utc(2027, 1, 1)) == utc(2026, 1, 1, 0, 20)
    one = Ticks(auto(repeat="hourly", start=dt.datetime(2026, 1, 1), end="after", occurrences=1))
    assert walk(one, utc(2020, 1, 1), 3) == [utc(2026, 1, 1), None]


def test_start_naive_is_in_the_timezone_aware_is_kept():
    naive = Ticks(auto(repeat="hourly", start=dt.datetime(2026, 7, 1, 9, 0), timezone="America/New_York"))
    assert naive.first == utc(2026, 7, 1, 13, 0)
    aware = Ticks(auto(repeat="hourly", start=dt.datetime(2026, 7, 1, 9, 0, tzinfo=UTC), timezone="America/New_York"))
    assert aware.first == utc(2026, 7, 1, 9, 0)
    with pytest.raises(ValueError, match="naive"):
        naive.first_tick_at_or_after(dt.datetime(2026, 7, 1))
    # pendulum datetimes work as input
    assert naive.next_tick_after(pendulum.datetime(2026, 7, 1, 13, 30)) == utc(2026, 7, 1, 14, 0)


def test_manual_schedule_has_no_ticks():
    with pytest.raises(ValueError, match="manual"):
        Ticks(Schedule())


@pytest.mark.parametrize(
    ("schedule", "text"),
    [
        (Schedule(), "manual"),
        (auto(repeat="every_minute"), "every minute, never ends"),
        (
            auto(repeat="every_minute", interval=15, start=dt.datetime(2026, 1, 1, 9, 0), end="after", occurrences=10),
            "every 15 minutes from 2026-01-01 09:00 UTC, 10 occurrences",
        ),
        (
            auto(repeat="hourly", interval=2, start=dt.datetime(2026, 1, 1), timezone="Europe/Berlin"),
            "every 2 hours from 2026-01-01 00:00 Europe/Berlin, never ends",
        ),
        (
            auto(
                repeat="hourly",
                start=dt.datetime(2026, 1, 1, 12, tzinfo=UTC),
                timezone="Europe/Berlin",
                end="after",
                occurrences=1,
            ),
            "every hour from 2026-01-01 13:00 Europe/Berlin, 1 occurrence",
        ),
        (auto(repeat="hourly", interval=6, timezone="Europe/Berlin"), "every 6 hours (Europe/Berlin), never ends"),
        (auto(repeat="daily", at="06:30", timezone="Europe/Berlin"), "daily at 06:30 (Europe/Berlin), never ends"),
        (
            auto(
                repeat="daily",
                at="06:30",
                timezone="Europe/Berlin",
                start=dt.datetime(2026, 3, 27, 8),
                end="after",
                occurrences=5,
            ),
            "daily at 06:30 (Europe/Berlin) from 2026-03-28, 5 occurrences",
        ),
    ],
)
def test_summary(schedule, text):
    assert summary(schedule) == text


# --- WorkflowTimetable -------------------------------------------------------------------

P = pendulum.datetime  # aware UTC pendulum DateTime, as Airflow passes them


def runs(tt: WorkflowTimetable, restriction: TimeRestriction, n: int = 10) -> list[dt.datetime]:
    """Ask for runs the way the scheduler does, each time passing the previous run's data interval."""
    out, last = [], None
    while len(out) < n and (info := tt.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)):
        assert info.data_interval == DataInterval.exact(info.run_after) and info.logical_date == info.run_after
        out.append(info.run_after)
        last = info.data_interval
    return out


@pytest.fixture
def now(monkeypatch):
    """Freeze the timetable's clock: now(t) sets it."""

    def set_now(t: pendulum.DateTime) -> None:
        monkeypatch.setattr(flowlink_timetable, "utcnow", lambda: t)

    return set_now


QUARTER = auto(
    repeat="every_minute",
    interval=15,
    start=dt.datetime(2026, 1, 1, 9, 0),
    timezone="Europe/Berlin",
    end="after",
    occurrences=3,
)  # 08:00, 08:15, 08:30 UTC


def test_from_schedule_refuses_manual():
    with pytest.raises(ValueError, match="ManualTimetable"):
        WorkflowTimetable.from_schedule(Schedule())


@pytest.mark.parametrize(
    "schedule",
    [
        QUARTER,
        auto(repeat="daily", at="06:30", timezone="Europe/Berlin"),
        auto(repeat="hourly", interval=3, start=dt.datetime(2026, 1, 1, 9, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
    ],
)
def test_serialize_round_trip(schedule):
    tt = WorkflowTimetable.from_schedule(schedule)
    data = tt.serialize()
    assert json.loads(json.dumps(data)) == data  # JSON-safe values only
    back = WorkflowTimetable.deserialize(json.loads(json.dumps(data)))
    assert back == tt and hash(back) == hash(tt)
    assert back.serialize() == data and back.summary == tt.summary
    assert runs(back, TimeRestriction(None, None, True), 3) == runs(tt, TimeRestriction(None, None, True), 3)


def test_summary_and_description():
    tt = WorkflowTimetable.from_schedule(QUARTER)
    assert tt.summary == tt.description == "every 15 minutes from 2026-01-01 09:00 Europe/Berlin, 3 occurrences"


def test_infer_manual_data_interval():
    tt = WorkflowTimetable.from_schedule(QUARTER)
    assert tt.infer_manual_data_interval(run_after=P(2026, 5, 1, 12, 3)) == DataInterval(
        P(2026, 5, 1, 12, 3), P(2026, 5, 1, 12, 3)
    )


def test_catchup_runs_every_occurrence_then_stops(now):
    now(P(2030, 1, 1))
    tt = WorkflowTimetable.from_schedule(QUARTER)
    expected = [P(2026, 1, 1, 8, 0), P(2026, 1, 1, 8, 15), P(2026, 1, 1, 8, 30)]
    got = runs(tt, TimeRestriction(earliest=P(2020, 1, 1), latest=None, catchup=True))
    assert got == expected
    assert all(isinstance(t, pendulum.DateTime) and t.timezone_name == "UTC" for t in got)
    # a later start_date skips the ticks before it; end_date (latest) stops early
    assert runs(tt, TimeRestriction(P(2026, 1, 1, 8, 10), None, True)) == expected[1:]
    assert runs(tt, TimeRestriction(None, P(2026, 1, 1, 8, 15), True)) == expected[:2]
    assert runs(tt, TimeRestriction(P(2026, 1, 1, 8, 31), None, True)) == []


def test_catchup_false_skips_to_the_latest_due_tick(now):
    tt = WorkflowTimetable.from_schedule(auto(repeat="every_minute", interval=15, start=dt.datetime(2026, 1, 1)))
    start_date = P(2026, 1, 1)

    def next_run(last: dt.datetime | None, earliest=start_date, catchup=False) -> dt.datetime:
        last_interval = DataInterval.exact(last) if last else None
        info = tt.next_dagrun_info(
            last_automated_data_interval=last_interval, restriction=TimeRestriction(earliest, None, catchup)
        )
        assert info == DagRunInfo.exact(info.run_after)
        return info.run_after

    now(P(2026, 5, 4, 10, 7))
    assert next_run(None) == P(2026, 5, 4, 10, 0)  # the latest tick <= now, not 2026-01-01
    assert next_run(P(2026, 2, 1)) == P(2026, 5, 4, 10, 0)  # the last run long ago: skip to the latest due tick
    assert next_run(P(2026, 5, 4, 10, 0)) == P(2026, 5, 4, 10, 15)  # the last run is the latest tick: the next one
    assert next_run(None, earliest=P(2026, 6, 1, 0, 1)) == P(2026, 6, 1, 0, 15)  # start_date in the future
    assert next_run(None, catchup=True) == start_date  # catchup=True runs everything from the start


def test_catchup_false_with_occurrences(now):
    tt = WorkflowTimetable.from_schedule(QUARTER)  # 08:00, 08:15, 08:30 UTC on 2026-01-01
    now(P(2026, 1, 1, 8, 20))
    assert runs(tt, TimeRestriction(None, None, False)) == [P(2026, 1, 1, 8, 15), P(2026, 1, 1, 8, 30)]
    # deployed after the schedule ended: the last occurrence once (like a cron timetable's latest due run) ...
    now(P(2026, 2, 1))
    assert runs(tt, TimeRestriction(None, None, False)) == [P(2026, 1, 1, 8, 30)]
    # ... unless the DAG's start_date is after it
    assert runs(tt, TimeRestriction(P(2026, 1, 2), None, False)) == []
    # nothing due yet: the first occurrence
    now(P(2025, 12, 1))
    assert runs(tt, TimeRestriction(None, None, False), 1) == [P(2026, 1, 1, 8, 0)]


def test_daily_timetable_over_dst(now):
    now(P(2030, 1, 1))
    tt = WorkflowTimetable.from_schedule(auto(repeat="daily", at="06:30", timezone="Europe/Berlin"))
    got = runs(tt, TimeRestriction(P(2026, 3, 27, 12), None, True), 3)
    assert got == [P(2026, 3, 28, 5, 30), P(2026, 3, 29, 4, 30), P(2026, 3, 30, 4, 30)]


# --- real Airflow: plugin registration, serialization, the CLI -----------------------------

DAG_FILE = """
import datetime as dt

from airflow.sdk import DAG

from flowlink.spec import Schedule
from flowlink_airflow.timetable import WorkflowTimetable

past = Schedule(sync="auto", repeat="every_minute", interval=15, start=dt.datetime(2020, 1, 1, 9, 0),
                timezone="Europe/Berlin", end="after", occurrences=3)
future = Schedule(sync="auto", repeat="daily", at="02:30", start=dt.datetime(2099, 3, 28), timezone="Europe/Berlin")

probe = DAG("tt_probe", schedule=WorkflowTimetable.from_schedule(past),
            start_date=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), catchup=True)
# as the DAG factory builds it: no start_date (the timetable knows the start), catchup=False
daily = DAG("tt_probe_daily", schedule=WorkflowTimetable.from_schedule(future), catchup=False)
"""

DATE_OR_NONE = re.compile(r"^(\d{4}-\d\d-\d\dT\S+|None)$")


def test_airflow_cli_next_execution(airflow_db, tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "tt_probe.py").write_text(textwrap.dedent(DAG_FILE))
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW_HOME": str(airflow_db)}
    airflow = str(Path(sys.executable).parent / "airflow")

    def cli(*args: str) -> list[str]:
        proc = subprocess.run([airflow, *args], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return [line for line in proc.stdout.splitlines() if DATE_OR_NONE.match(line)]  # logs go to stdout too

    cli("dags", "reserialize")
    # catchup=True, start long past, end after 3: exactly its 3 dates (the first from the DB's next_dagrun)
    assert cli("dags", "next-execution", "tt_probe", "-n", "4") == [
        "2020-01-01T08:00:00+00:00",
        "2020-01-01T08:15:00+00:00",
        "2020-01-01T08:30:00+00:00",
        "None",
    ]
    # daily 02:30 Berlin; 2099-03-29 is the spring-forward day, 02:30 does not exist -> 03:30 CEST
    assert cli("dags", "next-execution", "tt_probe_daily", "-n", "3") == [
        "2099-03-28T01:30:00+00:00",
        "2099-03-29T01:30:00+00:00",
        "2099-03-30T00:30:00+00:00",
    ]
