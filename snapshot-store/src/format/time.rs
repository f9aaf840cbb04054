//! UTC timestamps as snapshot ids and for display, without a time-zone database.

/// Converts days since 1970-01-01 to a civil (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The UTC fields of `ns` nanoseconds since the epoch.
fn fields(ns: i64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    (y, mo, d, (rem / 3600) as u32, (rem / 60 % 60) as u32, (rem % 60) as u32)
}

/// `2026-11-22T07-15-03Z`: sorts by time, valid as a file name on Linux, macOS and Windows.
pub fn id_stamp(ns: i64) -> String {
    let (y, mo, d, h, mi, s) = fields(ns);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}-{mi:02}-{s:02}Z")
}

/// `2026-11-22T07:15:03Z` (RFC 3339), for display and JSON.
pub fn rfc3339(ns: i64) -> String {
    let (y, mo, d, h, mi, s) = fields(ns);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The time (ns since the epoch) of an id stamp `YYYY-MM-DDTHH-MM-SSZ` (a suffix is ignored).
pub fn parse_id_stamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20 || b.get(10) != Some(&b'T') || b.get(19) != Some(&b'Z') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    Some((days * 86_400 + h * 3600 + mi * 60 + sec) * 1_000_000_000)
}

/// Nanoseconds since the Unix epoch now.
pub fn now_ns() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(id_stamp(0), "1970-01-01T00-00-00Z");
        // 2026-11-22T07:15:03Z
        let ns = 1_795_331_703 * 1_000_000_000;
        assert_eq!(id_stamp(ns), "2026-11-22T07-15-03Z");
        assert_eq!(rfc3339(ns), "2026-11-22T07:15:03Z");
        assert_eq!(rfc3339(951_782_400 * 1_000_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1_000_000_000), "1969-12-31T23:59:59Z");
        assert_eq!(parse_id_stamp("2026-11-22T07-15-03Z"), Some(ns));
        assert_eq!(parse_id_stamp("2026-11-22T07-15-03Z-04"), Some(ns));
        assert_eq!(
            parse_id_stamp(&id_stamp(951_782_400 * 1_000_000_000)),
            Some(951_782_400 * 1_000_000_000)
        );
        assert_eq!(parse_id_stamp("2026-13-22T07-15-03Z"), None);
    }
}
