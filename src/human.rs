//! Human-readable formatting.

pub use snapshot_store::format_size as size;

/// Seconds with a sensible precision.
pub fn duration(secs: f64) -> String {
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 600.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    }
}

/// Bytes per second.
pub fn rate(bytes: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{}/s", size((bytes as f64 / secs) as u64))
}
