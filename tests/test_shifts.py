"""Shift hours: is a technician on shift at an instant? Checked with exact UTC instants.

Shifts are local wall-clock hours in the technician's zone; Warsaw is UTC+1 in winter (CET)
and UTC+2 in summer (CEST). In 2026 the clocks go forward on Sunday 29 March at 02:00
(to 03:00) and back on Sunday 25 October at 03:00 (to 02:00).
"""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from dispatch.technicians.shifts import is_on_shift

WARSAW = "Europe/Warsaw"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def on(now: datetime, start: str | None, end: str | None, days: str | None = None, zone: str = "UTC") -> bool:
    return is_on_shift(
        now,
        start=time.fromisoformat(start) if start else None,
        end=time.fromisoformat(end) if end else None,
        days=days,
        timezone=zone,
    )


def minutes_on_shift(start_at: datetime, hours: int, **shift: str) -> int:
    """Walk a stretch of real time minute by minute and count the minutes on shift."""
    return sum(on(start_at + timedelta(minutes=m), **shift) for m in range(hours * 60))


# Plain day shifts -----------------------------------------------------------------------


def test_a_technician_without_shift_hours_is_always_on_shift():
    assert on(utc(2026, 3, 10, 3, 0), None, None)
    assert on(utc(2026, 3, 14, 23, 59), None, None, days="1")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 3, 10, 7, 59, 59), False),
        (utc(2026, 3, 10, 8, 0), True),  # the start is inside the shift
        (utc(2026, 3, 10, 12, 0), True),
        (utc(2026, 3, 10, 15, 59, 59), True),
        (utc(2026, 3, 10, 16, 0), False),  # the end is not
        (utc(2026, 3, 10, 23, 0), False),
    ],
)
def test_a_day_shift_runs_from_its_start_up_to_its_end(now, expected):
    assert on(now, "08:00", "16:00") is expected


def test_a_day_shift_in_warsaw_is_checked_in_warsaw_time():
    # 10 March is winter time: 08:00-16:00 in Warsaw is 07:00-15:00 UTC.
    assert not on(utc(2026, 3, 10, 6, 59, 59), "08:00", "16:00", zone=WARSAW)
    assert on(utc(2026, 3, 10, 7, 0), "08:00", "16:00", zone=WARSAW)
    assert on(utc(2026, 3, 10, 14, 59, 59), "08:00", "16:00", zone=WARSAW)
    assert not on(utc(2026, 3, 10, 15, 0), "08:00", "16:00", zone=WARSAW)


def test_a_weekday_shift_is_off_at_the_weekend():
    weekdays = "12345"
    assert on(utc(2026, 3, 13, 10, 0), "08:00", "16:00", days=weekdays)  # Friday
    assert not on(utc(2026, 3, 14, 10, 0), "08:00", "16:00", days=weekdays)  # Saturday
    assert not on(utc(2026, 3, 15, 10, 0), "08:00", "16:00", days=weekdays)  # Sunday
    assert on(utc(2026, 3, 16, 10, 0), "08:00", "16:00", days=weekdays)  # Monday


def test_the_weekday_is_the_technicians_local_one_not_utcs():
    # Sunday 23:30 UTC is already Monday 00:30 in Warsaw (winter, UTC+1).
    sunday_night_utc = utc(2026, 3, 15, 23, 30)
    assert on(sunday_night_utc, "00:00", "02:00", days="1", zone=WARSAW)
    assert not on(sunday_night_utc, "00:00", "02:00", days="7", zone=WARSAW)
    assert not on(sunday_night_utc, "00:00", "02:00", days="1")  # in UTC it is still Sunday


# Overnight and 24-hour shifts ---------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 3, 13, 21, 59, 59), False),  # Friday, before the start
        (utc(2026, 3, 13, 22, 0), True),  # Friday night
        (utc(2026, 3, 13, 23, 59, 59), True),
        (utc(2026, 3, 14, 0, 0), True),  # Saturday small hours: still Friday's shift
        (utc(2026, 3, 14, 5, 59, 59), True),
        (utc(2026, 3, 14, 6, 0), False),  # Friday's shift is over
        (utc(2026, 3, 14, 12, 0), False),
        (utc(2026, 3, 14, 22, 0), False),  # Saturday night: no shift starts on Saturday
        (utc(2026, 3, 15, 3, 0), False),
        (utc(2026, 3, 13, 3, 0), False),  # Friday small hours belong to Thursday, off
    ],
)
def test_an_overnight_shift_belongs_to_the_day_it_starts_on(now, expected):
    assert on(now, "22:00", "06:00", days="5") is expected  # Fridays only


def test_an_every_night_shift_covers_both_sides_of_midnight():
    assert on(utc(2026, 3, 10, 23, 0), "22:00", "06:00")
    assert on(utc(2026, 3, 11, 2, 0), "22:00", "06:00")
    assert not on(utc(2026, 3, 11, 12, 0), "22:00", "06:00")
    assert minutes_on_shift(utc(2026, 3, 10, 12, 0), 24, start="22:00", end="06:00") == 8 * 60


def test_a_sunday_night_shift_runs_into_monday_morning():
    assert on(utc(2026, 3, 16, 3, 0), "22:00", "06:00", days="7")  # Monday 03:00, Sunday's shift
    assert not on(utc(2026, 3, 16, 3, 0), "22:00", "06:00", days="1")


def test_a_midnight_to_midnight_shift_is_the_whole_day():
    assert on(utc(2026, 3, 16, 0, 0), "00:00", "00:00", days="1")  # Monday
    assert on(utc(2026, 3, 16, 23, 59, 59), "00:00", "00:00", days="1")
    assert not on(utc(2026, 3, 17, 0, 0), "00:00", "00:00", days="1")
    assert not on(utc(2026, 3, 15, 23, 59, 59), "00:00", "00:00", days="1")
    assert minutes_on_shift(utc(2026, 3, 15, 0, 0), 72, start="00:00", end="00:00", days="1") == 24 * 60


def test_a_24_hour_shift_every_day_is_always_on():
    for hour in range(0, 24, 3):
        assert on(utc(2026, 3, 10, hour, 0), "08:00", "08:00")


def test_a_24_hour_shift_from_08_00_runs_until_08_00_next_morning():
    """start == end is 24 hours from the start, like an overnight shift belongs to its start day."""
    mondays = {"start": "08:00", "end": "08:00", "days": "1"}
    assert not on(utc(2026, 3, 16, 7, 59), **mondays)  # Monday before 08:00: not started yet
    assert on(utc(2026, 3, 16, 8, 0), **mondays)
    assert on(utc(2026, 3, 16, 23, 0), **mondays)
    assert on(utc(2026, 3, 17, 7, 59), **mondays)  # Tuesday morning, still Monday's shift
    assert not on(utc(2026, 3, 17, 8, 0), **mondays)
    assert minutes_on_shift(utc(2026, 3, 15, 0, 0), 72, **mondays) == 24 * 60


# Daylight saving time in Warsaw -------------------------------------------------------

DAY = {"start": "08:00", "end": "16:00", "zone": WARSAW}
NIGHT = {"start": "22:00", "end": "06:00", "zone": WARSAW}


def test_a_day_shift_starts_an_hour_earlier_in_utc_in_summer():
    # Saturday 28 March, winter time: 08:00 Warsaw = 07:00 UTC.
    assert not on(utc(2026, 3, 28, 6, 59, 59), **DAY)
    assert on(utc(2026, 3, 28, 7, 0), **DAY)
    assert on(utc(2026, 3, 28, 14, 59, 59), **DAY)
    assert not on(utc(2026, 3, 28, 15, 0), **DAY)
    # Monday 30 March, summer time: 08:00 Warsaw = 06:00 UTC.
    assert not on(utc(2026, 3, 30, 5, 59, 59), **DAY)
    assert on(utc(2026, 3, 30, 6, 0), **DAY)
    assert on(utc(2026, 3, 30, 13, 59, 59), **DAY)
    assert not on(utc(2026, 3, 30, 14, 0), **DAY)


def test_on_the_spring_forward_day_the_day_shift_follows_summer_time():
    # Sunday 29 March: clocks went forward at 01:00 UTC, so 08:00 is already CEST.
    assert not on(utc(2026, 3, 29, 5, 59, 59), **DAY)
    assert on(utc(2026, 3, 29, 6, 0), **DAY)
    assert not on(utc(2026, 3, 29, 14, 0), **DAY)
    assert minutes_on_shift(utc(2026, 3, 29, 0, 0), 24, **DAY) == 8 * 60


def test_on_the_spring_forward_night_an_overnight_shift_lasts_7_real_hours():
    # Saturday 28 March 22:00 CET = 21:00 UTC; Sunday 06:00 CEST = 04:00 UTC.
    saturdays = {**NIGHT, "days": "6"}
    assert not on(utc(2026, 3, 28, 20, 59, 59), **saturdays)
    assert on(utc(2026, 3, 28, 21, 0), **saturdays)
    assert on(utc(2026, 3, 29, 0, 59, 59), **saturdays)  # 01:59:59 CET, just before the jump
    assert on(utc(2026, 3, 29, 1, 0), **saturdays)  # 03:00 CEST, just after it
    assert on(utc(2026, 3, 29, 3, 59, 59), **saturdays)
    assert not on(utc(2026, 3, 29, 4, 0), **saturdays)
    assert minutes_on_shift(utc(2026, 3, 28, 12, 0), 24, **saturdays) == 7 * 60


def test_a_shift_inside_the_skipped_hour_does_not_happen_that_night():
    skipped = {"start": "02:00", "end": "03:00", "zone": WARSAW}
    assert not on(utc(2026, 3, 29, 0, 59, 59), **skipped)  # 01:59:59 CET
    assert not on(utc(2026, 3, 29, 1, 0), **skipped)  # 03:00 CEST
    assert minutes_on_shift(utc(2026, 3, 28, 12, 0), 24, **skipped) == 0
    assert minutes_on_shift(utc(2026, 3, 29, 12, 0), 24, **skipped) == 60  # back the next night


def test_a_day_shift_starts_an_hour_later_in_utc_after_fall_back():
    # Saturday 24 October, summer time: 06:00-14:00 UTC.
    assert not on(utc(2026, 10, 24, 5, 59, 59), **DAY)
    assert on(utc(2026, 10, 24, 6, 0), **DAY)
    assert not on(utc(2026, 10, 24, 14, 0), **DAY)
    # Sunday 25 October, winter time again: 07:00-15:00 UTC.
    assert not on(utc(2026, 10, 25, 6, 59, 59), **DAY)
    assert on(utc(2026, 10, 25, 7, 0), **DAY)
    assert on(utc(2026, 10, 25, 14, 59, 59), **DAY)
    assert not on(utc(2026, 10, 25, 15, 0), **DAY)
    assert minutes_on_shift(utc(2026, 10, 25, 0, 0), 24, **DAY) == 8 * 60


def test_on_the_fall_back_night_an_overnight_shift_lasts_9_real_hours():
    # Saturday 24 October 22:00 CEST = 20:00 UTC; Sunday 06:00 CET = 05:00 UTC.
    saturdays = {**NIGHT, "days": "6"}
    assert not on(utc(2026, 10, 24, 19, 59, 59), **saturdays)
    assert on(utc(2026, 10, 24, 20, 0), **saturdays)
    assert on(utc(2026, 10, 25, 4, 59, 59), **saturdays)
    assert not on(utc(2026, 10, 25, 5, 0), **saturdays)
    assert minutes_on_shift(utc(2026, 10, 24, 12, 0), 24, **saturdays) == 9 * 60


def test_both_passes_through_the_repeated_hour_are_on_shift():
    # 02:30 in Warsaw happens twice on 25 October: 00:30 UTC (CEST) and 01:30 UTC (CET).
    first, second = utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)
    assert first.astimezone(ZoneInfo(WARSAW)).time() == time(2, 30)
    assert second.astimezone(ZoneInfo(WARSAW)).time() == time(2, 30)
    # Saturday's night shift covers both: they are Sunday small hours.
    assert on(first, **NIGHT, days="6") and on(second, **NIGHT, days="6")
    assert not on(first, **NIGHT, days="7") and not on(second, **NIGHT, days="7")
    # A shift of exactly that wall-clock hour runs for two real hours that night.
    repeated = {"start": "02:00", "end": "03:00", "zone": WARSAW}
    assert not on(utc(2026, 10, 24, 23, 59, 59), **repeated)  # 01:59:59 CEST
    assert on(utc(2026, 10, 25, 0, 0), **repeated)  # 02:00 CEST
    assert on(utc(2026, 10, 25, 1, 59, 59), **repeated)  # 02:59:59 CET
    assert not on(utc(2026, 10, 25, 2, 0), **repeated)  # 03:00 CET
    assert minutes_on_shift(utc(2026, 10, 24, 12, 0), 24, **repeated) == 2 * 60


# Working through a queue of jobs on shift (the watcher's technician_overloaded) -------------

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dispatch.technicians.shifts import finish_times


def finishes(
    since: datetime,
    per_job_minutes: int,
    count: int,
    start: str | None,
    end: str | None,
    days: str | None = None,
    zone: str = "UTC",
) -> list[datetime | None]:
    done = finish_times(
        since,
        timedelta(minutes=per_job_minutes),
        count,
        start=time.fromisoformat(start) if start else None,
        end=time.fromisoformat(end) if end else None,
        days=days,
        timezone=zone,
    )
    return [None if stamp == float("inf") else datetime.fromtimestamp(stamp, UTC) for stamp in done]


def test_without_shift_hours_the_jobs_follow_each_other_round_the_clock():
    assert finishes(utc(2026, 3, 10, 22), 90, 3, None, None) == [
        utc(2026, 3, 10, 23, 30),
        utc(2026, 3, 11, 1),
        utc(2026, 3, 11, 2, 30),
    ]


def test_work_left_at_the_end_of_a_shift_waits_for_the_next_one():
    # Tuesday 15:00 in Warsaw, shift 08:00-16:00 on weekdays: an hour today, the rest tomorrow.
    since = datetime(2026, 3, 10, 15, tzinfo=ZoneInfo(WARSAW))
    local = [
        f.astimezone(ZoneInfo(WARSAW)).strftime("%a %H:%M")
        for f in finishes(since, 90, 3, "08:00", "16:00", "12345", WARSAW)
    ]
    assert local == ["Wed 08:30", "Wed 10:00", "Wed 11:30"]


def test_friday_evenings_work_waits_for_monday():
    since = datetime(2026, 3, 13, 15, 30, tzinfo=ZoneInfo(WARSAW))  # a Friday
    [done] = finishes(since, 60, 1, "08:00", "16:00", "12345", WARSAW)
    assert done == datetime(2026, 3, 16, 8, 30, tzinfo=ZoneInfo(WARSAW))


def test_an_overnight_shift_that_began_yesterday_still_counts():
    since = utc(2026, 3, 11, 5)  # 05:00, inside the shift that began at 22:00 yesterday
    assert finishes(since, 90, 1, "22:00", "06:00") == [utc(2026, 3, 11, 22, 30)]


def test_the_short_night_of_the_spring_change_has_seven_hours():
    since = datetime(2026, 3, 28, 22, tzinfo=ZoneInfo(WARSAW))  # clocks go forward at 02:00
    [seven, longer] = finishes(since, 7 * 60, 2, "22:00", "06:00", None, WARSAW)
    assert seven == datetime(2026, 3, 29, 6, tzinfo=ZoneInfo(WARSAW))
    assert longer == datetime(2026, 3, 29, 22, 0, tzinfo=ZoneInfo(WARSAW)) + timedelta(hours=7)


@hypothesis_settings(max_examples=40, deadline=None)
@given(
    since=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31)).map(
        lambda d: d.replace(second=0, microsecond=0, tzinfo=UTC)
    ),
    start=st.integers(0, 23),
    length=st.integers(1, 24),
    per_job=st.integers(1, 240),
    count=st.integers(1, 3),
    days=st.sets(st.sampled_from("1234567"), min_size=1).map(lambda s: "".join(sorted(s))),
    zone=st.sampled_from(["UTC", WARSAW, "America/New_York"]),
)
def test_finish_times_agree_with_walking_the_clock_minute_by_minute(since, start, length, per_job, count, days, zone):
    shift = {"start": f"{start:02d}:00", "end": f"{(start + length) % 24:02d}:00", "days": days, "zone": zone}
    expected, worked, minute = [], 0, 0
    while len(expected) < count:
        if on(since + timedelta(minutes=minute), **shift):
            worked += 1
            if worked == per_job * (len(expected) + 1):
                expected.append(since + timedelta(minutes=minute + 1))
        minute += 1
    assert finishes(since, per_job, count, shift["start"], shift["end"], days, zone) == expected
