//! The retention policy stored in `config` (format version 2): which snapshots `forget` keeps,
//! whether `prune` merges delta chains, and whether `write` runs both after each commit.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::fmt;
use std::str::FromStr;

use crate::error::Result;
use crate::format::codec::{Decoder, Encoder};
use crate::format::policy::Percent;

/// A calendar span for `--keep-within`: years, months, days and hours, subtracted in that order
/// from the newest snapshot's local time (`1y5m7d2h`; `w` counts 7 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Calendar years.
    pub years: u32,
    /// Calendar months.
    pub months: u32,
    /// Days (a week is 7).
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl Span {
    /// True when every part is zero (the rule is off).
    pub fn is_zero(&self) -> bool {
        *self == Span::default()
    }
}

impl FromStr for Span {
    type Err = String;

    /// Parses `10d`, `1y5m7d2h`, `2w`: numbers each followed by a unit `y`, `m`, `w`, `d` or
    /// `h`, each unit at most once.
    fn from_str(s: &str) -> std::result::Result<Span, String> {
        let t = s.trim();
        let mut span = Span::default();
        let mut seen = String::new();
        let mut digits = String::new();
        let bad = |why: &str| format!("invalid duration {s:?}: {why} (use e.g. 10d, 2w, 1y6m, 36h)");
        for c in t.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = c.to_ascii_lowercase();
            if digits.is_empty() {
                return Err(bad(&format!("{c:?} has no number before it")));
            }
            if seen.contains(unit) {
                return Err(bad(&format!("unit {unit:?} given twice")));
            }
            let n: u32 = digits.parse().map_err(|_| bad("number too large"))?;
            digits.clear();
            let slot = match unit {
                'y' => &mut span.years,
                'm' => &mut span.months,
                'w' => {
                    span.days = span.days.saturating_add(n.saturating_mul(7));
                    seen.push(unit);
                    continue;
                }
                'd' => &mut span.days,
                'h' => &mut span.hours,
                other => return Err(bad(&format!("unknown unit {other:?}"))),
            };
            *slot = slot.saturating_add(n);
            seen.push(unit);
        }
        if !digits.is_empty() {
            return Err(bad("a number needs a unit"));
        }
        if span.is_zero() {
            return Err(bad("the duration is zero"));
        }
        Ok(span)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, u) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n > 0 {
                write!(f, "{n}{u}")?;
            }
        }
        Ok(())
    }
}

/// The keep rules of `forget`, with restic's meaning: each count keeps the newest snapshot of
/// each of the last N periods that have snapshots; `None` turns a rule off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeepRules {
    /// The N newest snapshots.
    pub last: Option<u32>,
    /// One per hour.
    pub hourly: Option<u32>,
    /// One per day.
    pub daily: Option<u32>,
    /// One per ISO week.
    pub weekly: Option<u32>,
    /// One per month.
    pub monthly: Option<u32>,
    /// One per year.
    pub yearly: Option<u32>,
    /// Everything newer than the newest snapshot minus this span.
    pub within: Option<Span>,
}

impl KeepRules {
    /// True when no rule is set.
    pub fn is_empty(&self) -> bool {
        *self == KeepRules::default()
    }

    /// The counted rules with their names, in the order `forget` reports them.
    pub fn counted(&self) -> [(&'static str, Option<u32>); 6] {
        [
            ("last", self.last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ]
    }

    /// These rules with every rule `other` sets replaced by `other`'s.
    pub fn with(mut self, other: &KeepRules) -> KeepRules {
        let pick = |a: &mut Option<u32>, b: Option<u32>| {
            if b.is_some() {
                *a = b;
            }
        };
        pick(&mut self.last, other.last);
        pick(&mut self.hourly, other.hourly);
        pick(&mut self.daily, other.daily);
        pick(&mut self.weekly, other.weekly);
        pick(&mut self.monthly, other.monthly);
        pick(&mut self.yearly, other.yearly);
        if other.within.is_some() {
            self.within = other.within;
        }
        self
    }
}

impl fmt::Display for KeepRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .counted()
            .iter()
            .filter_map(|(name, n)| n.map(|n| format!("--keep-{name} {n}")))
            .collect();
        if let Some(w) = self.within {
            parts.push(format!("--keep-within {w}"));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

/// The retention policy stored in a store's `config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The rules `forget` applies when given none (empty: `forget` needs rules or snapshots).
    pub keep: KeepRules,
    /// Merge incremental deltas that no kept snapshot needs into their chain's full (`prune`);
    /// writes then make incremental deltas only and ignore the max-deltas and max-delta-ratio
    /// rules.
    pub delta_merge: bool,
    /// After each commit, `write` forgets by `keep` and prunes.
    pub auto_prune: bool,
    /// A chain is merged at most once per this many seconds of snapshot time.
    pub merge_interval_s: u64,
    /// A data object is rewritten with only its used bytes once more than this share of it is
    /// used by no kept version (5% by default, as restic's packs).
    pub max_unused: Percent,
    /// Files condemned while a registered reader may still use them are deleted after this many
    /// seconds even if it has not caught up.
    pub grace_s: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep: KeepRules::default(),
            delta_merge: false,
            auto_prune: false,
            merge_interval_s: 24 * 3600,
            max_unused: Percent(5 * 100),
            grace_s: 24 * 3600,
        }
    }
}

const FLAG_DELTA_MERGE: u8 = 1;
const FLAG_AUTO_PRUNE: u8 = 2;

impl Retention {
    /// Bytes of the encoded policy.
    pub const ENCODED_LEN: usize = 1 + 6 * 4 + 4 * 4 + 8 + 4 + 8;

    pub(crate) fn encode(&self, e: &mut Encoder) {
        let mut flags = 0;
        if self.delta_merge {
            flags |= FLAG_DELTA_MERGE;
        }
        if self.auto_prune {
            flags |= FLAG_AUTO_PRUNE;
        }
        e.u8(flags);
        for (_, n) in self.keep.counted() {
            e.u32(n.unwrap_or(0));
        }
        let w = self.keep.within.unwrap_or_default();
        for n in [w.years, w.months, w.days, w.hours] {
            e.u32(n);
        }
        e.u64(self.merge_interval_s);
        e.u32(self.max_unused.0);
        e.u64(self.grace_s);
    }

    pub(crate) fn decode(d: &mut Decoder<'_>) -> Result<Retention> {
        let flags = d.u8()?;
        if flags & !(FLAG_DELTA_MERGE | FLAG_AUTO_PRUNE) != 0 {
            return Err(d.error(format!("unknown retention flags {flags:#04x}")));
        }
        let mut counts = [None; 6];
        for c in &mut counts {
            *c = Some(d.u32()?).filter(|&n| n != 0);
        }
        let [last, hourly, daily, weekly, monthly, yearly] = counts;
        let within = Span {
            years: d.u32()?,
            months: d.u32()?,
            days: d.u32()?,
            hours: d.u32()?,
        };
        let merge_interval_s = d.u64()?;
        let max_unused = Percent(d.u32()?);
        if max_unused.0 > 10_000 {
            return Err(d.error(format!("max unused {max_unused} is over 100%")));
        }
        let grace_s = d.u64()?;
        Ok(Retention {
            keep: KeepRules {
                last,
                hourly,
                daily,
                weekly,
                monthly,
                yearly,
                within: Some(within).filter(|w| !w.is_zero()),
            },
            delta_merge: flags & FLAG_DELTA_MERGE != 0,
            auto_prune: flags & FLAG_AUTO_PRUNE != 0,
            merge_interval_s,
            max_unused,
            grace_s,
        })
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = |b: bool| if b { "on" } else { "off" };
        write!(
            f,
            "keep {}, delta merge {}, auto prune {}, merge interval {}h, max unused {}, grace {}h",
            self.keep,
            on(self.delta_merge),
            on(self.auto_prune),
            self.merge_interval_s / 3600,
            self.max_unused,
            self.grace_s / 3600
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_like_restic_plus_weeks() {
        let s = |t: &str| t.parse::<Span>();
        assert_eq!(
            s("1y5m7d2h").unwrap(),
            Span {
                years: 1,
                months: 5,
                days: 7,
                hours: 2
            }
        );
        assert_eq!(s("10d").unwrap().days, 10);
        assert_eq!(s("2w").unwrap().days, 14);
        assert_eq!(s("1w3d").unwrap().days, 10);
        for bad in ["", "10", "d", "10x", "1d1d", "0d", "-3d", "1.5d", "99999999999d"] {
            let err = s(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
        assert!(s("10q").unwrap_err().contains("unknown unit 'q'"));
        assert_eq!(s("1y5m7d2h").unwrap().to_string(), "1y5m7d2h");
    }

    #[test]
    fn roundtrip_every_field() {
        let r = Retention {
            keep: KeepRules {
                last: Some(3),
                hourly: None,
                daily: Some(7),
                weekly: Some(4),
                monthly: Some(12),
                yearly: Some(u32::MAX),
                within: Some(Span {
                    years: 0,
                    months: 1,
                    days: 2,
                    hours: 3,
                }),
            },
            delta_merge: true,
            auto_prune: true,
            merge_interval_s: 3600,
            max_unused: Percent(1234),
            grace_s: 0,
        };
        for r in [r, Retention::default()] {
            let mut e = Encoder::new();
            r.encode(&mut e);
            let bytes = e.into_bytes();
            assert_eq!(bytes.len(), Retention::ENCODED_LEN);
            let mut d = Decoder::new(&bytes, "r");
            assert_eq!(Retention::decode(&mut d).unwrap(), r);
            d.finish().unwrap();
        }
    }

    #[test]
    fn unknown_flags_and_impossible_values_are_corrupt() {
        let mut e = Encoder::new();
        Retention::default().encode(&mut e);
        let good = e.into_bytes();
        let mut bad = good.clone();
        bad[0] = 4;
        assert!(Retention::decode(&mut Decoder::new(&bad, "r")).is_err());
        let mut bad = good;
        let at = 1 + 24 + 16 + 8;
        bad[at..at + 4].copy_from_slice(&10_001u32.to_le_bytes());
        assert!(Retention::decode(&mut Decoder::new(&bad, "r")).is_err());
    }
}
