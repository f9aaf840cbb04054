//! Keep rules against a table of cases: restic's documented behaviour, weeks that straddle a
//! year, months of different lengths, `within`, time zones, several sources.

use super::*;

fn at(rfc: &str) -> i64 {
    let ts: Timestamp = rfc.parse().unwrap();
    i64::try_from(ts.as_nanosecond()).unwrap()
}

fn snap(rfc: &str, source: &str) -> SnapshotInfo {
    let ns = at(rfc);
    SnapshotInfo {
        id: SnapshotId::at(ns, 0),
        time_ns: ns,
        host: "h".into(),
        source: source.into(),
    }
}

/// The kept snapshots' times (as given, newest first), applying `rules` in UTC offset `hours`.
fn kept(times: &[&str], rules: KeepRules, hours: i8) -> Vec<String> {
    let snaps: Vec<SnapshotInfo> = times.iter().map(|t| snap(t, "/src")).collect();
    let tz = TimeZone::fixed(jiff::tz::offset(hours));
    apply(&snaps, &rules, &tz)
        .into_iter()
        .filter(Verdict::keep)
        .map(|v| crate::format::time::rfc3339(v.snapshot.time_ns))
        .collect()
}

fn rules(f: impl FnOnce(&mut KeepRules)) -> KeepRules {
    let mut r = KeepRules::default();
    f(&mut r);
    r
}

/// Sixty daily snapshots at 03:00Z, 2026-01-01 to 2026-03-01.
fn sixty_days() -> Vec<String> {
    let start = at("2026-01-01T03:00:00Z");
    (0..60)
        .map(|d| crate::format::time::rfc3339(start + d * 86_400_000_000_000))
        .collect()
}

#[test]
fn keep_last_keeps_the_newest_n() {
    let t = [
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
        "2026-01-03T00:00:00Z",
        "2026-01-04T00:00:00Z",
    ];
    assert_eq!(
        kept(&t, rules(|r| r.last = Some(2)), 0),
        ["2026-01-04T00:00:00Z", "2026-01-03T00:00:00Z"]
    );
}

#[test]
fn daily_keeps_the_newest_of_each_day_that_has_snapshots() {
    let t = [
        "2026-01-01T08:00:00Z",
        "2026-01-01T20:00:00Z",
        "2026-01-03T09:00:00Z",
        "2026-01-03T10:00:00Z",
        "2026-01-06T01:00:00Z",
    ];
    // The days without snapshots (2, 4, 5) do not count.
    assert_eq!(
        kept(&t, rules(|r| r.daily = Some(2)), 0),
        ["2026-01-06T01:00:00Z", "2026-01-03T10:00:00Z"]
    );
    // Counts left after the last snapshot: the oldest is kept too (restic 0.17).
    assert_eq!(
        kept(&t, rules(|r| r.daily = Some(5)), 0),
        [
            "2026-01-06T01:00:00Z",
            "2026-01-03T10:00:00Z",
            "2026-01-01T20:00:00Z",
            "2026-01-01T08:00:00Z"
        ]
    );
}

#[test]
fn hourly_buckets_by_the_hour() {
    let t = ["2026-01-01T08:05:00Z", "2026-01-01T08:55:00Z", "2026-01-01T09:01:00Z"];
    assert_eq!(
        kept(&t, rules(|r| r.hourly = Some(2)), 0),
        ["2026-01-01T09:01:00Z", "2026-01-01T08:55:00Z"]
    );
}

#[test]
fn iso_weeks_straddle_the_new_year() {
    // 2020-12-28 (Mon) .. 2021-01-03 (Sun) is ISO week 2020-W53; 2021-01-04 starts 2021-W01.
    let t = [
        "2020-12-28T12:00:00Z",
        "2021-01-01T12:00:00Z",
        "2021-01-03T12:00:00Z",
        "2021-01-04T12:00:00Z",
        "2021-01-10T12:00:00Z",
    ];
    assert_eq!(
        kept(&t, rules(|r| r.weekly = Some(2)), 0),
        ["2021-01-10T12:00:00Z", "2021-01-03T12:00:00Z"]
    );
    // By calendar year, 2021-01-01 would start a new period; by ISO week it does not.
    assert_eq!(kept(&t, rules(|r| r.yearly = Some(1)), 0), ["2021-01-10T12:00:00Z"]);
}

#[test]
fn months_of_different_lengths() {
    let t = [
        "2024-01-31T10:00:00Z",
        "2024-02-29T10:00:00Z",
        "2024-03-01T10:00:00Z",
        "2024-03-31T10:00:00Z",
        "2024-04-30T10:00:00Z",
    ];
    assert_eq!(
        kept(&t, rules(|r| r.monthly = Some(3)), 0),
        ["2024-04-30T10:00:00Z", "2024-03-31T10:00:00Z", "2024-02-29T10:00:00Z"]
    );
}

#[test]
fn within_is_relative_to_the_newest_snapshot_and_strict() {
    let t = [
        "2026-03-05T12:00:00Z",
        "2026-03-05T12:00:01Z",
        "2026-03-10T00:00:00Z",
        "2026-03-15T12:00:00Z",
    ];
    let w = |s: &str| rules(|r| r.within = Some(s.parse().unwrap()));
    assert_eq!(
        kept(&t, w("10d"), 0),
        ["2026-03-15T12:00:00Z", "2026-03-10T00:00:00Z", "2026-03-05T12:00:01Z"]
    );
    assert_eq!(
        kept(&t, w("5d13h"), 0),
        ["2026-03-15T12:00:00Z", "2026-03-10T00:00:00Z"]
    );
    assert_eq!(kept(&t, w("5d12h"), 0), ["2026-03-15T12:00:00Z"]);
    // A month back from March 31 is February's last day (calendar arithmetic, clamped).
    let t = ["2026-02-27T12:00:00Z", "2026-02-28T13:00:00Z", "2026-03-31T12:00:00Z"];
    assert_eq!(kept(&t, w("1m"), 0), ["2026-03-31T12:00:00Z", "2026-02-28T13:00:00Z"]);
}

#[test]
fn periods_are_in_the_given_time_zone() {
    // In UTC these fall on January 1, 2 and 2; in UTC-5 on January 1, 1 and 2.
    let t = ["2026-01-01T20:00:00Z", "2026-01-02T03:00:00Z", "2026-01-02T10:00:00Z"];
    let daily2 = rules(|r| r.daily = Some(2));
    assert_eq!(kept(&t, daily2, 0), ["2026-01-02T10:00:00Z", "2026-01-01T20:00:00Z"]);
    assert_eq!(kept(&t, daily2, -5), ["2026-01-02T10:00:00Z", "2026-01-02T03:00:00Z"]);
}

#[test]
fn daily_7_weekly_4_over_sixty_days_keeps_ten() {
    let days = sixty_days();
    let t: Vec<&str> = days.iter().map(String::as_str).collect();
    let k = kept(
        &t,
        rules(|r| {
            r.daily = Some(7);
            r.weekly = Some(4)
        }),
        0,
    );
    // 2026-03-01 is a Sunday: the last 7 days are ISO week 9; weeks 8, 7 and 6 add their
    // Sundays.
    assert_eq!(
        k,
        [
            "2026-03-01T03:00:00Z",
            "2026-02-28T03:00:00Z",
            "2026-02-27T03:00:00Z",
            "2026-02-26T03:00:00Z",
            "2026-02-25T03:00:00Z",
            "2026-02-24T03:00:00Z",
            "2026-02-23T03:00:00Z",
            "2026-02-22T03:00:00Z",
            "2026-02-15T03:00:00Z",
            "2026-02-08T03:00:00Z",
        ]
    );
}

#[test]
fn each_source_keeps_its_newest_and_counts_its_own_periods() {
    let snaps = vec![
        snap("2026-01-01T00:00:00Z", "/a"),
        snap("2026-01-02T00:00:00Z", "/a"),
        snap("2026-01-03T00:00:00Z", "/b"),
        snap("2026-01-01T06:00:00Z", "/b"),
    ];
    let v = apply(&snaps, &rules(|r| r.last = Some(1)), &TimeZone::UTC);
    let keep: Vec<(&str, bool)> = v.iter().map(|v| (v.snapshot.source.as_str(), v.keep())).collect();
    assert_eq!(keep, [("/b", true), ("/b", false), ("/a", true), ("/a", false)]);
    assert_eq!(v[0].reasons, [KeepReason::Newest, KeepReason::Rule("last")]);
    // No rule at all still keeps each source's newest.
    let v = apply(&snaps, &KeepRules::default(), &TimeZone::UTC);
    assert_eq!(v.iter().filter(|v| v.keep()).count(), 2);
}

#[test]
fn reasons_name_every_rule_that_keeps_a_snapshot() {
    let days = sixty_days();
    let t: Vec<SnapshotInfo> = days.iter().map(|d| snap(d, "/s")).collect();
    let r = rules(|r| {
        r.daily = Some(2);
        r.monthly = Some(2);
        r.within = Some("1d".parse().unwrap())
    });
    let v = apply(&t, &r, &TimeZone::UTC);
    assert_eq!(
        v[0].reasons,
        [
            KeepReason::Newest,
            KeepReason::Within("1d".parse().unwrap()),
            KeepReason::Rule("daily"),
            KeepReason::Rule("monthly")
        ]
    );
    // February 28th is the newest of its day and of its month.
    assert_eq!(v[1].reasons, [KeepReason::Rule("daily"), KeepReason::Rule("monthly")]);
    assert_eq!(v.iter().filter(|v| v.keep()).count(), 2);
}

/// Part of the snapshot list of restic's own policy tests (`internal/restic`), with the results
/// its rules give.
#[test]
fn restics_example_snapshot_list() {
    let t = [
        "2014-11-22T10:20:30Z",
        "2015-11-22T10:20:30Z",
        "2016-01-01T01:02:03Z",
        "2016-01-01T01:03:03Z",
        "2016-01-01T07:08:03Z",
        "2016-01-03T07:02:03Z",
        "2016-01-04T10:23:03Z",
        "2016-01-04T11:23:03Z",
        "2016-01-04T12:23:03Z",
        "2016-01-04T12:24:03Z",
        "2016-01-04T12:28:03Z",
        "2016-01-04T12:30:03Z",
        "2016-01-04T16:23:03Z",
        "2016-01-05T09:02:03Z",
        "2016-01-06T08:02:03Z",
        "2016-01-07T10:02:03Z",
        "2016-01-08T20:02:03Z",
        "2016-01-09T21:02:03Z",
        "2016-01-12T21:02:03Z",
        "2016-01-12T21:08:03Z",
        "2016-01-18T12:02:03Z",
    ];
    let k = |r: KeepRules| kept(&t, r, 0);
    assert_eq!(
        k(rules(|r| r.daily = Some(3))),
        ["2016-01-18T12:02:03Z", "2016-01-12T21:08:03Z", "2016-01-09T21:02:03Z"]
    );
    assert_eq!(
        k(rules(|r| r.weekly = Some(2))),
        ["2016-01-18T12:02:03Z", "2016-01-12T21:08:03Z"]
    );
    assert_eq!(
        k(rules(|r| r.hourly = Some(5))),
        [
            "2016-01-18T12:02:03Z",
            "2016-01-12T21:08:03Z",
            "2016-01-09T21:02:03Z",
            "2016-01-08T20:02:03Z",
            "2016-01-07T10:02:03Z"
        ]
    );
    assert_eq!(
        k(rules(|r| {
            r.last = Some(5);
            r.daily = Some(5)
        })),
        [
            "2016-01-18T12:02:03Z",
            "2016-01-12T21:08:03Z",
            "2016-01-12T21:02:03Z",
            "2016-01-09T21:02:03Z",
            "2016-01-08T20:02:03Z",
            "2016-01-07T10:02:03Z"
        ]
    );
    assert_eq!(
        k(rules(|r| r.within = Some("7d".parse().unwrap()))),
        ["2016-01-18T12:02:03Z", "2016-01-12T21:08:03Z", "2016-01-12T21:02:03Z"]
    );
    assert_eq!(
        k(rules(|r| r.monthly = Some(2))),
        ["2016-01-18T12:02:03Z", "2015-11-22T10:20:30Z"]
    );
    // Counts left at the oldest: it is kept, once.
    assert_eq!(
        k(rules(|r| r.yearly = Some(10))),
        ["2016-01-18T12:02:03Z", "2015-11-22T10:20:30Z", "2014-11-22T10:20:30Z"]
    );
}
