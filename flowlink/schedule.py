"""Schedule arithmetic: when an automatic `Schedule` ticks, and how to say it in words.

Pure Python (zoneinfo); nothing here knows about Airflow. All functions take aware
datetimes and return aware UTC datetimes.

The tick sequence:

* every N minutes / every N hours with a ``start``: ``start + k * N`` in elapsed time.
* every N minutes / every N hours without ``start``: like cron ``*/N`` on the local wall
  clock: every instant whose local time reads minute % N == 0 (minutes), or hour % N == 0
  at minute 0 (hours). A repeated hour (clocks go back) ticks twice, a skipped hour not at all.
* daily: every local day at ``at``; a time skipped by a DST change runs that much later
  (02:30 -> 03:30), a repeated time runs once, at its first occurrence. With a ``start``
  the first tick is the first one at or after it.

Occurrences are counted from the start: tick k = 0, 1, ... and ``end: after N`` means no
tick with k >= N.
"""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo

from flowlink.spec import Schedule

UTC = dt.UTC
_TINY = dt.timedelta(microseconds=1)


def _utc(t: dt.datetime) -> dt.datetime:
    """A plain aware UTC datetime (also from pendulum.DateTime); naive input is refused."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime {t!r}: give a time zone")
    u = t.astimezone(UTC)
    return dt.datetime(u.year, u.month, u.day, u.hour, u.minute, u.second, u.microsecond, tzinfo=UTC)


def _local(date: dt.date, wall: dt.time, tz: ZoneInfo, fold: int = 0) -> dt.datetime:
    return dt.datetime.combine(date, wall, tzinfo=tz).replace(fold=fold).astimezone(UTC)


@functools.lru_cache(maxsize=32)
def _cron_day(tz_name: str, hourly: bool, n: int, date: dt.date) -> tuple[dt.datetime, ...]:
    """The instants of one local day whose wall-clock reading matches cron */n (sorted, UTC)."""
    tz = ZoneInfo(tz_name)
    hours, minutes = (range(0, 24, n), [0]) if hourly else (range(24), range(0, 60, n))
    found = set()
    for wall in (dt.time(h, m) for h in hours for m in minutes):
        for fold in (0, 1):
            t = _local(date, wall, tz, fold)
            if t.astimezone(tz).replace(tzinfo=None) == dt.datetime.combine(date, wall):  # exists
                found.add(t)
    return tuple(sorted(found))


class Ticks:
    """The tick sequence of an automatic schedule."""

    def __init__(self, schedule: Schedule):
        if schedule.sync != "auto" or schedule.repeat is None:
            raise ValueError("a manual schedule has no ticks")
        self.tz = ZoneInfo(schedule.timezone)
        self.daily = schedule.repeat == "daily"
        self.hourly = schedule.repeat == "hourly"
        self.interval = schedule.interval
        self.step = dt.timedelta(hours=schedule.interval) if self.hourly else dt.timedelta(minutes=schedule.interval)
        self.at = dt.time.fromisoformat(schedule.at) if self.daily and schedule.at else dt.time(0)  # used when daily
        start = schedule.start
        if start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=self.tz)
        self.start = _utc(start) if start is not None else None
        self.count = schedule.occurrences
        self.first = self._any_at_or_after(self.start) if self.start else None  # tick k = 0
        self.last = self.tick(self.count - 1) if self.count else None  # tick k = N - 1

    def tick(self, k: int) -> dt.datetime:
        """The k-th tick counted from the start (needs a start)."""
        if self.first is None:
            raise ValueError("ticks are counted from the start; this schedule has none")
        if self.daily:
            return self._daily_on(self._date(self.first) + dt.timedelta(days=k))
        return self.first + k * self.step

    def index(self, tick: dt.datetime) -> int:
        """k of a tick: how many ticks since the start came before it."""
        if self.first is None:
            raise ValueError("ticks are counted from the start; this schedule has none")
        if self.daily:
            return (self._date(_utc(tick)) - self._date(self.first)).days
        return (_utc(tick) - self.first) // self.step

    def first_tick_at_or_after(self, t: dt.datetime) -> dt.datetime | None:
        t = _utc(t)
        if self.first is not None and t <= self.first:
            return self.first
        tick = self._any_at_or_after(t)
        return None if self.last is not None and tick > self.last else tick

    def next_tick_after(self, t: dt.datetime) -> dt.datetime | None:
        return self.first_tick_at_or_after(_utc(t) + _TINY)

    def last_tick_at_or_before(self, t: dt.datetime) -> dt.datetime | None:
        t = _utc(t)
        if self.first is not None and t < self.first:
            return None
        if self.last is not None and t >= self.last:
            return self.last
        return self._any_at_or_before(t)

    # The unbounded sequence (ignoring the start's "nothing before" and the count).

    def _date(self, t: dt.datetime) -> dt.date:
        return t.astimezone(self.tz).date()

    def _daily_on(self, date: dt.date) -> dt.datetime:
        return _local(date, self.at, self.tz)

    def _around(self, t: dt.datetime, days: range) -> list[dt.datetime]:
        d = self._date(t)
        ticks = []
        for offset in days:
            date = d + dt.timedelta(days=offset)
            if self.daily:
                ticks.append(self._daily_on(date))
            else:
                ticks += _cron_day(self.tz.key, self.hourly, self.interval, date)
        return ticks

    def _any_at_or_after(self, t: dt.datetime) -> dt.datetime:
        if self.start is not None and not self.daily:
            return self.start - ((self.start - t) // self.step) * self.step  # ceil to the grid
        return min(x for x in self._around(t, range(-1, 3)) if x >= t)

    def _any_at_or_before(self, t: dt.datetime) -> dt.datetime:
        if self.start is not None and not self.daily:
            return self.start + ((t - self.start) // self.step) * self.step  # floor to the grid
        return max(x for x in self._around(t, range(-2, 2)) if x <= t)


def summary(schedule: Schedule) -> str:
    """'every 15 minutes from 2026-01-01 09:00 UTC, 10 occurrences', 'daily at 06:30 (Europe/Berlin), never ends', 'manual'."""
    if schedule.sync == "manual":
        return "manual"
    if schedule.sync == "after":
        return "after " + " and ".join(item.label() for item in schedule.after or ())
    n, tz = schedule.interval, schedule.timezone
    start = schedule.start
    if start is not None:
        start = (start.replace(tzinfo=ZoneInfo(tz)) if start.tzinfo is None else start).astimezone(ZoneInfo(tz))
    if schedule.repeat == "daily":
        text = f"daily at {schedule.at} ({tz})"
        first = Ticks(schedule).first if start is not None else None
        if first is not None:
            text += f" from {first.astimezone(ZoneInfo(tz)):%Y-%m-%d}"
    else:
        unit = "minute" if schedule.repeat == "every_minute" else "hour"
        text = f"every {unit}" if n == 1 else f"every {n} {unit}s"
        if start is not None:
            text += f" from {start:%Y-%m-%d %H:%M} {tz}"
        elif tz != "UTC":
            text += f" ({tz})"
    if schedule.occurrences is None:
        return f"{text}, never ends"
    return f"{text}, {schedule.occurrences} occurrence{'s' if schedule.occurrences != 1 else ''}"
