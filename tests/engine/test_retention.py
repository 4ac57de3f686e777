"""The keep rules of ``forget`` against hand-computed tables that mirror restic's documented examples
(fake times, no clock: every generation's time is given)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from sigmavault import UsageError
from sigmavault.engine.retention import Duration, Rules, apply


def at(text: str, tz: timezone = UTC) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=tz).timestamp())


def history(*times: str) -> list[tuple[int, int]]:
    """Generations 1, 2, … at the given times (oldest first)."""
    return [(i + 1, at(t)) for i, t in enumerate(times)]


def kept(gens: list[tuple[int, int]], rules: Rules, tz: timezone = UTC) -> list[int]:
    d = apply(gens, rules, tz)
    assert sorted([*d.keep, *d.forget]) == sorted(g for g, _ in gens)  # every generation decided once
    return sorted(d.keep)


# the restic forum's worked example of --keep-daily: a1 May 1 8:00, a2 May 2 8:00, a3 May 2 11:00,
# a4 May 4 9:00, a5 May 5 10:00 -> keeps a1, a3, a4, a5 (one per day, the newest of each day)
MAY = history("2023-05-01T08:00", "2023-05-02T08:00", "2023-05-02T11:00", "2023-05-04T09:00", "2023-05-05T10:00")


def test_keep_daily_one_per_day_newest_of_each() -> None:
    assert kept(MAY, Rules(daily=4)) == [1, 3, 4, 5]
    assert kept(MAY, Rules(daily=2)) == [4, 5]  # two days taken: no count left for the oldest
    assert kept(MAY, Rules(daily=3)) == [3, 4, 5]
    # counts left at the oldest: it is kept additionally (restic >= 0.14), here it is its day's anyway
    assert kept(MAY, Rules(daily=10)) == [1, 3, 4, 5]
    late = [(1, at("2023-05-01T08:00")), (2, at("2023-05-01T09:00")), (3, at("2023-05-02T08:00"))]
    assert kept(late, Rules(daily=5)) == [1, 2, 3]  # 1 shares 2's day, but it is the oldest and counts are left


def test_keep_last_takes_the_newest_n() -> None:
    assert kept(MAY, Rules(last=2)) == [4, 5]
    assert kept(MAY, Rules(last=1)) == [5]
    assert kept(MAY, Rules(last=-1)) == [1, 2, 3, 4, 5]  # unlimited


def test_a_generation_is_kept_if_any_rule_keeps_it_and_reasons_are_listed() -> None:
    d = apply(MAY, Rules(last=1, daily=3), UTC)
    assert sorted(d.keep) == [3, 4, 5] and d.forget == [1, 2]
    assert d.keep[5] == ["newest", "last", "daily"] and d.keep[4] == ["daily"] and d.keep[3] == ["daily"]
    assert sorted(apply(MAY, Rules(last=2, daily=1), UTC).keep) == [4, 5]  # last keeps 4, daily only 5


def test_keep_hourly() -> None:
    gens = history("2023-01-01T10:05", "2023-01-01T10:40", "2023-01-01T11:10", "2023-01-01T11:50", "2023-01-01T13:00")
    assert kept(gens, Rules(hourly=2)) == [4, 5]  # 13h, 11h (its newest)
    assert kept(gens, Rules(hourly=3)) == [2, 4, 5]  # 13h, 11h, 10h (its newest, 10:40)


def test_keep_weekly_uses_iso_weeks_across_the_new_year() -> None:
    # 2020-12-31 (Thu) and 2021-01-03 (Sun) are both ISO week 2020-W53; 2021-01-04 starts 2021-W01
    gens = history("2020-12-24T12:00", "2020-12-31T12:00", "2021-01-03T12:00", "2021-01-04T12:00")
    assert kept(gens, Rules(weekly=2)) == [3, 4]  # W01, W53 (its newest: Jan 3)
    assert kept(gens, Rules(weekly=3)) == [1, 3, 4]  # W01, W53, W52


def test_keep_monthly_and_yearly() -> None:
    gens = history("2021-06-01T00:00", "2021-12-31T23:00", "2022-01-15T00:00", "2022-03-01T00:00", "2022-03-20T00:00")
    assert kept(gens, Rules(monthly=2)) == [3, 5]  # 2022-03 (its newest), 2022-01
    assert kept(gens, Rules(monthly=6)) == [1, 2, 3, 5]  # 2022-03, 2022-01, 2021-12, 2021-06
    assert kept(gens, Rules(yearly=1)) == [5]
    assert kept(gens, Rules(yearly=2)) == [2, 5]  # 2022's newest and 2021's newest (the oldest's bucket is taken)


def test_restic_documented_example_daily_backups_for_years() -> None:
    """restic's docs: daily backups, ``--keep-daily 7 --keep-weekly 5 --keep-monthly 12 --keep-yearly 75``
    keep "the most recent 7 daily snapshots, then 4 (7 dailies already include 1 weekly)
    last-day-of-the-weeks and 11 or 12 last-day-of-the-months …, and finally 75
    last-day-of-the-year snapshots". Here: three years of noon backups ending Sunday 2023-12-31."""
    start = datetime(2021, 1, 1, 12, tzinfo=UTC)
    days = [start + timedelta(days=i) for i in range((date(2023, 12, 31) - start.date()).days + 1)]
    gens = [(i + 1, int(d.timestamp())) for i, d in enumerate(days)]
    gen_of = {d.date().isoformat(): i + 1 for i, d in enumerate(days)}
    expected = {
        # 7 dailies
        "2023-12-31",
        "2023-12-30",
        "2023-12-29",
        "2023-12-28",
        "2023-12-27",
        "2023-12-26",
        "2023-12-25",
        # 4 more weeklies (ISO weeks end on Sunday)
        "2023-12-24",
        "2023-12-17",
        "2023-12-10",
        "2023-12-03",
        # 11 more monthlies: the last day of each month
        "2023-11-30",
        "2023-10-31",
        "2023-09-30",
        "2023-08-31",
        "2023-07-31",
        "2023-06-30",
        "2023-05-31",
        "2023-04-30",
        "2023-03-31",
        "2023-02-28",
        "2023-01-31",
        # yearlies: the last day of 2022 and 2021, then the oldest (counts left)
        "2022-12-31",
        "2021-12-31",
        "2021-01-01",
    }
    result = kept(gens, Rules(daily=7, weekly=5, monthly=12, yearly=75))
    assert result == sorted(gen_of[d] for d in expected) and len(result) == 25


def test_keep_within_is_relative_to_the_newest_and_strict() -> None:
    gens = history("2023-01-01T00:00", "2023-01-21T00:00", "2023-01-21T00:01", "2023-01-31T00:00")
    assert kept(gens, Rules(within="10d")) == [3, 4]  # exactly 10 days before the newest is not "after"
    assert kept(gens, Rules(within="30d")) == [2, 3, 4]  # Jan 1 00:00 is exactly 30 days before: out
    assert kept(gens, Rules(within="1m")) == [1, 2, 3, 4]  # one month before Jan 31 is Dec 31: Jan 1 is in
    assert kept(gens, Rules(within="240h")) == [3, 4]


def test_within_moves_the_calendar_like_go_add_date() -> None:
    newest = datetime(2023, 3, 31, 12, tzinfo=UTC)
    assert Duration.parse("1m").before(newest) == datetime(2023, 3, 3, 12, tzinfo=UTC).timestamp()  # "Feb 31"
    leap = datetime(2024, 2, 29, tzinfo=UTC)
    assert Duration.parse("1y").before(leap) == datetime(2023, 3, 1, tzinfo=UTC).timestamp()
    assert Duration.parse("1y5m7d2h") == Duration(1, 5, 7, 2)
    assert Duration.parse("1d1d") == Duration(days=2)


@pytest.mark.parametrize("text", ["", "30", "d", "1w", "-1d", "1.5d", "30 d", "1D", "10000y"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        Rules(within=text)


def test_no_rule_is_refused_never_forget_everything() -> None:
    with pytest.raises(UsageError, match="no keep rule"):
        apply(MAY, Rules())
    with pytest.raises(UsageError):
        apply(MAY, Rules(last=0, daily=0))
    with pytest.raises(UsageError):
        Rules(last=-2)


def test_buckets_are_local_time() -> None:
    # 20:00 UTC on Jan 1 is 06:00 on Jan 2 at UTC+10: two days in UTC, one day in that zone
    gens = history("2023-01-01T09:00", "2023-01-01T20:00", "2023-01-02T08:00")
    assert kept(gens, Rules(daily=1), UTC) == [3]
    assert kept(gens, Rules(daily=2), UTC) == [2, 3]
    plus10 = timezone(timedelta(hours=10))
    assert kept(gens, Rules(daily=2), plus10) == [1, 3]  # Jan 2 (local) holds 2 and 3; Jan 1 (local) holds 1


def test_the_newest_is_always_kept_and_order_is_the_chain() -> None:
    # a writer with a clock behind: generation 3 says it is oldest; it is still the newest generation
    gens = [(1, at("2023-05-02T00:00")), (2, at("2023-05-03T00:00")), (3, at("2023-05-01T00:00"))]
    d = apply(gens, Rules(within="1h"), UTC)
    assert 3 in d.keep and d.keep[3][0] == "newest"
    assert apply([], Rules(last=1)).keep == {}
