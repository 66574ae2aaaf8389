"""Working hours and away as pure functions: windows in the person's own zone, correct on the days clocks change."""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.chase import decide, next_due
from engine.hours import Availability, availability, back_at, later, next_open, parse_hours
from engine.model import ChaseSpec

NY, KOLKATA, UTC = ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata"), ZoneInfo("UTC")
OFFICE = parse_hours("Mon-Fri 09:00-18:00")


def at(tz, *when):
    """The instant of a wall-clock time in ``tz``."""
    return datetime(*when, tzinfo=tz).timestamp()


def local(tz, ts):
    return datetime.fromtimestamp(ts, tz).replace(tzinfo=None)


@pytest.mark.parametrize("tz", [NY, KOLKATA], ids=["New York", "Kolkata"])
def test_an_opening_due_at_two_in_the_night_waits_for_nine_on_the_persons_own_clock(tz):
    # Tuesday 2027-01-12, 02:00 where the person is
    assert local(tz, next_open(OFFICE, tz, at(tz, 2027, 1, 12, 2, 0))) == datetime(2027, 1, 12, 9, 0)
    # inside the window: at once
    assert next_open(OFFICE, tz, at(tz, 2027, 1, 12, 9, 0)) == at(tz, 2027, 1, 12, 9, 0)
    assert next_open(OFFICE, tz, at(tz, 2027, 1, 12, 17, 59)) == at(tz, 2027, 1, 12, 17, 59)
    # 18:00 is the end: the next morning; Friday evening and the weekend: Monday morning
    assert local(tz, next_open(OFFICE, tz, at(tz, 2027, 1, 12, 18, 0))) == datetime(2027, 1, 13, 9, 0)
    assert local(tz, next_open(OFFICE, tz, at(tz, 2027, 1, 15, 20, 0))) == datetime(2027, 1, 18, 9, 0)
    assert local(tz, next_open(OFFICE, tz, at(tz, 2027, 1, 16, 11, 0))) == datetime(2027, 1, 18, 9, 0)


def test_the_same_instant_is_night_in_new_york_and_working_time_in_kolkata():
    moment = at(UTC, 2027, 1, 12, 7, 0)  # 02:00 in New York, 12:30 in Kolkata
    assert next_open(OFFICE, KOLKATA, moment) == moment
    assert next_open(OFFICE, NY, moment) == at(UTC, 2027, 1, 12, 14, 0)


def test_several_windows_overnight_windows_and_always():
    split = parse_hours(["Mon-Thu 08:00-16:00", "Fri 08:00-12:00"])
    assert local(UTC, next_open(split, UTC, at(UTC, 2027, 1, 15, 13, 0))) == datetime(2027, 1, 18, 8, 0)  # Fri pm
    assert parse_hours("Mon-Thu 08:00-16:00; Fri 08:00-12:00") == split
    night = parse_hours("Mon-Fri 22:00-06:00")
    assert next_open(night, UTC, at(UTC, 2027, 1, 13, 3, 0)) == at(UTC, 2027, 1, 13, 3, 0)  # Wed 03:00: Tue's
    assert local(UTC, next_open(night, UTC, at(UTC, 2027, 1, 13, 7, 0))) == datetime(2027, 1, 13, 22, 0)
    weekend = parse_hours("Fri-Mon 10:00-24:00")  # wraps over the weekend; 24:00 is midnight
    assert local(UTC, next_open(weekend, UTC, at(UTC, 2027, 1, 13, 12, 0))) == datetime(2027, 1, 15, 10, 0)
    assert next_open(weekend, UTC, at(UTC, 2027, 1, 16, 23, 59)) == at(UTC, 2027, 1, 16, 23, 59)
    for anytime in (parse_hours("always"), parse_hours(None), parse_hours(["always"])):
        assert anytime.always
        assert next_open(anytime, NY, 12345.0) == 12345.0


@pytest.mark.parametrize(("spec", "reason"), [
    ("Mon-Fri 9-18", "'Mon-Fri 9-18' is not a working-hours window (use e.g. Mon-Fri 09:00-18:00"),
    ("Mon-Fry 09:00-18:00", "'Fry' is not a day"),
    ("Mon 25:00-26:00", "'25:00' is not a time of day"),
    ("Mon 09:00-09:00", "is an empty window"),
    (["always", "Mon 09:00-10:00"], "'always' cannot be combined"),
])
def test_hours_that_cannot_be_read_are_refused_saying_why(spec, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_hours(spec)


def test_a_daily_chase_is_at_the_same_local_time_across_the_march_change():
    # New York moves its clocks from 02:00 to 03:00 on Sunday 2026-03-08
    window = Availability(NY, parse_hours("Mon-Sun 09:00-18:00"))
    spec = ChaseSpec(interval="24h", max_chases=2)
    opened = at(NY, 2026, 3, 7, 10, 0)  # Saturday 10:00 EST
    kind, due = next_due(chases_sent=0, last_activity_at=opened, last_chase_at=0, spec=spec, window=window)
    assert (kind, local(NY, due)) == ("chase", datetime(2026, 3, 8, 10, 0))  # Sunday 10:00 EDT
    assert due - opened == 23 * 3600  # the day was an hour short
    # both sides of the change, with the clock given: not yet at 09:59 EDT, due at 10:00 EDT
    check = dict(open_=True, chases_sent=0, last_activity_at=opened, last_chase_at=0, spec=spec, window=window)
    assert decide(**check, now=at(NY, 2026, 3, 8, 9, 59)).action == "wait"
    assert decide(**check, now=at(NY, 2026, 3, 8, 10, 0)).action == "chase"
    # the default office hours: due on Saturday, it waits for Monday 09:00 EDT (13:00 UTC, not 14:00)
    office = Availability(NY, OFFICE)
    friday = at(NY, 2026, 3, 6, 10, 0)
    _, due = next_due(chases_sent=0, last_activity_at=friday, last_chase_at=0, spec=spec, window=office)
    assert due == at(UTC, 2026, 3, 9, 13, 0)


def test_a_daily_chase_is_at_the_same_local_time_across_the_november_change():
    # New York moves its clocks from 02:00 back to 01:00 on Sunday 2026-11-01
    window = Availability(NY, parse_hours("Mon-Sun 09:00-18:00"))
    spec = ChaseSpec(interval="24h", max_chases=1)
    opened = at(NY, 2026, 10, 31, 10, 0)  # Saturday 10:00 EDT
    _, due = next_due(chases_sent=0, last_activity_at=opened, last_chase_at=0, spec=spec, window=window)
    assert local(NY, due) == datetime(2026, 11, 1, 10, 0)  # Sunday 10:00 EST
    assert due - opened == 25 * 3600
    check = dict(open_=True, chases_sent=0, last_activity_at=opened, last_chase_at=0, spec=spec, window=window)
    assert decide(**check, now=opened + 24 * 3600).action == "wait"  # 09:00 EST: 24 hours, one short of a day
    assert decide(**check, now=due).action == "chase"
    # after the one chase, the time-out is a day later on the wall clock, and does not wait for the window
    kind, out = next_due(chases_sent=1, last_activity_at=opened, last_chase_at=at(NY, 2026, 11, 1, 17, 30),
                         spec=spec, window=Availability(NY, OFFICE))
    assert (kind, local(NY, out)) == ("time_out", datetime(2026, 11, 2, 17, 30))


def test_part_days_are_counted_in_real_time():
    opened = at(NY, 2026, 3, 8, 1, 0)  # 01:00 EST, an hour before the change
    assert later(opened, 3 * 3600, NY) == opened + 3 * 3600  # 05:00 EDT: three hours of real time
    assert local(NY, later(opened, 36 * 3600, NY)) == datetime(2026, 3, 9, 13, 0)  # a day, then twelve hours
    assert later(opened, 86400, UTC) == opened + 86400


def test_away_until_a_date_means_back_at_its_start_in_their_own_zone():
    assert back_at("2027-01-10", NY) == at(NY, 2027, 1, 10, 0, 0)
    assert back_at("2027-01-10T09:30", KOLKATA) == at(KOLKATA, 2027, 1, 10, 9, 30)
    assert back_at("2027-01-10T09:30+00:00", NY) == at(UTC, 2027, 1, 10, 9, 30)
    assert back_at(None, NY) is None
    person = availability("America/New_York", None, "Mon-Fri 10:00-12:00", "always", away_until="2027-01-10")
    assert person.away(at(NY, 2027, 1, 9, 23, 59))
    assert not person.away(at(NY, 2027, 1, 10, 0, 0))
    assert person.hours == parse_hours("Mon-Fri 10:00-12:00")  # the task's, the contact giving none
    assert availability("Nowhere/Atlantis").tz == UTC  # a zone stored before validation: UTC, not a crash


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
       st.sampled_from(["America/New_York", "Asia/Kolkata", "Europe/London", "Australia/Lord_Howe"]),
       st.sampled_from(["Mon-Fri 09:00-18:00", "Sat 02:00-03:00", "Mon-Sun 01:30-02:30; Wed 22:00-04:00"]))
def test_the_next_window_start_is_never_before_the_instant_and_is_inside_a_window(moment, name, spec):
    tz, hours = ZoneInfo(name), parse_hours(spec)
    start = moment.replace(tzinfo=UTC).timestamp()
    found = next_open(hours, tz, start)
    assert start <= found < start + 8 * 86400
    assert next_open(hours, tz, found) == found  # it is inside a window
    if found - 1 >= start:
        assert next_open(hours, tz, found - 1) > found - 1  # and no earlier instant since ``start`` is


def test_a_window_that_falls_into_the_spring_gap_is_skipped():
    # 01:30-02:30 does not exist in London on 2026-03-29 (01:00 GMT jumps to 02:00 BST): the next
    # window is the next night's, not the instant the missing one would have started (found by hypothesis)
    london = ZoneInfo("Europe/London")
    hours = parse_hours("Mon-Sun 01:30-02:30")
    evening = datetime(2026, 3, 28, 23, 20, tzinfo=UTC).timestamp()
    found = next_open(hours, london, evening)
    assert datetime.fromtimestamp(found, london) == datetime(2026, 3, 30, 1, 30, tzinfo=london)
    assert next_open(hours, london, found) == found
