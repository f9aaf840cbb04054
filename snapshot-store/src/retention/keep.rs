//! Which snapshots keep rules keep, with restic's semantics: snapshots are grouped by host and
//! source; in each group, newest first, a counted rule keeps a snapshot whose period (hour,
//! day, ISO week, month, year, in the given time zone) differs from the last one it kept, until
//! its count is used up, and keeps the group's oldest snapshot too while counts are left;
//! `within` keeps everything newer than the group's newest snapshot minus a calendar span. The
//! newest snapshot of each group is always kept.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::format::retention::{KeepRules, Span};
use crate::format::snapshot::SnapshotId;

/// What `forget` needs to know of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its id.
    pub id: SnapshotId,
    /// Its recorded time, ns since the epoch.
    pub time_ns: i64,
    /// The host that wrote it.
    pub host: String,
    /// The source it is of (as recorded, lossily decoded).
    pub source: String,
}

/// Why a snapshot is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepReason {
    /// The newest snapshot of its host and source (kept by every policy).
    Newest,
    /// A counted rule (`last`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`) kept it as the
    /// newest of its period.
    Rule(&'static str),
    /// A counted rule with counts left after every snapshot kept it as the group's oldest.
    Oldest(&'static str),
    /// Newer than the newest snapshot minus the span.
    Within(Span),
    /// Snapshots were named and this was not one of them.
    NotNamed,
}

impl std::fmt::Display for KeepReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeepReason::Newest => f.write_str("newest of its source"),
            KeepReason::Rule(r) => write!(f, "{r}"),
            KeepReason::Oldest(r) => write!(f, "oldest ({r})"),
            KeepReason::Within(s) => write!(f, "within {s}"),
            KeepReason::NotNamed => f.write_str("not named"),
        }
    }
}

/// The decision for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// Why it is kept; empty means it is forgotten.
    pub reasons: Vec<KeepReason>,
}

impl Verdict {
    /// True when the snapshot is kept.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// The local calendar fields of `ns` in `tz`.
fn local(ns: i64, tz: &TimeZone) -> jiff::civil::DateTime {
    let ts = Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(Timestamp::UNIX_EPOCH);
    tz.to_datetime(ts)
}

/// The period key of `ns` for counted rule `rule` (`last` gives every snapshot its own).
fn period(rule: &str, ns: i64, nr: usize, tz: &TimeZone) -> i64 {
    let d = local(ns, tz);
    let (y, m, day, h) = (
        i64::from(d.year()),
        i64::from(d.month()),
        i64::from(d.day()),
        i64::from(d.hour()),
    );
    match rule {
        "hourly" => ((y * 100 + m) * 100 + day) * 100 + h,
        "daily" => (y * 100 + m) * 100 + day,
        "weekly" => {
            let w = d.date().iso_week_date();
            i64::from(w.year()) * 100 + i64::from(w.week())
        }
        "monthly" => y * 100 + m,
        "yearly" => y,
        _ => nr as i64,
    }
}

/// The instant `span` before `ns` in `tz` (calendar arithmetic: years, months, days, then
/// hours); the earliest representable time when that is out of range.
fn before(ns: i64, span: Span, tz: &TimeZone) -> i64 {
    let ts = Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(Timestamp::UNIX_EPOCH);
    let zoned = ts.to_zoned_datetime(tz.clone());
    let calendar = jiff::Span::new()
        .try_years(i64::from(span.years))
        .and_then(|s| s.try_months(i64::from(span.months)))
        .and_then(|s| s.try_days(i64::from(span.days)));
    let back = calendar.ok().and_then(|c| zoned.checked_sub(c).ok()).and_then(|z| {
        z.checked_sub(jiff::SignedDuration::from_hours(i64::from(span.hours)))
            .ok()
    });
    back.map_or(i64::MIN, |z| {
        i64::try_from(z.timestamp().as_nanosecond()).unwrap_or(i64::MIN)
    })
}

/// Applies `rules` to `snapshots` (any order) in time zone `tz`; returns one verdict per
/// snapshot, newest first within each group and groups in order of their newest snapshot.
pub fn apply(snapshots: &[SnapshotInfo], rules: &KeepRules, tz: &TimeZone) -> Vec<Verdict> {
    let mut groups: Vec<Vec<&SnapshotInfo>> = Vec::new();
    for s in snapshots {
        match groups
            .iter_mut()
            .find(|g| g.first().is_some_and(|f| f.host == s.host && f.source == s.source))
        {
            Some(g) => g.push(s),
            None => groups.push(vec![s]),
        }
    }
    for g in &mut groups {
        g.sort_by(|a, b| (b.time_ns, &b.id).cmp(&(a.time_ns, &a.id)));
    }
    groups.sort_by(|a, b| {
        let key = |g: &Vec<&SnapshotInfo>| g.first().map(|s| (s.time_ns, s.id.clone()));
        key(b).cmp(&key(a))
    });
    groups.iter().flat_map(|g| apply_group(g, rules, tz)).collect()
}

/// [`apply`] for one group, newest first.
fn apply_group(group: &[&SnapshotInfo], rules: &KeepRules, tz: &TimeZone) -> Vec<Verdict> {
    let mut counted: Vec<(&'static str, u32, Option<i64>)> = rules
        .counted()
        .iter()
        .filter_map(|&(name, n)| n.map(|n| (name, n, None)))
        .collect();
    let newest = group.first().map_or(0, |s| s.time_ns);
    let within_after = rules.within.map(|w| (w, before(newest, w, tz)));
    let last = group.len().saturating_sub(1);
    group
        .iter()
        .enumerate()
        .map(|(nr, s)| {
            let mut reasons = Vec::new();
            if nr == 0 {
                reasons.push(KeepReason::Newest);
            }
            if let Some((span, after)) = within_after
                && s.time_ns > after
            {
                reasons.push(KeepReason::Within(span));
            }
            for (name, left, last_period) in &mut counted {
                if *left == 0 {
                    continue;
                }
                let p = period(name, s.time_ns, nr, tz);
                if *last_period != Some(p) {
                    *last_period = Some(p);
                    *left -= 1;
                    reasons.push(KeepReason::Rule(name));
                } else if nr == last {
                    *left -= 1;
                    reasons.push(KeepReason::Oldest(name));
                }
            }
            Verdict {
                snapshot: (*s).clone(),
                reasons,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
