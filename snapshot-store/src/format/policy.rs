//! The delta policy of the seeds: incremental or differential chains, when to start a new full,
//! which files are too small for deltas, and the block size of signatures.

use std::fmt;
use std::str::FromStr;

use crate::error::Result;
use crate::format::codec::{Decoder, Encoder};

/// What a delta is computed against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeltaMode {
    /// Against the file's previous version: smallest deltas, restore needs the whole chain
    /// (backup-fs reads any version at the same speed anyway, see `ExtentMap`).
    #[default]
    Incremental,
    /// Against the chain's full version: deltas grow daily, each depends only on the full.
    Differential,
}

impl FromStr for DeltaMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "incremental" | "inc" => Ok(DeltaMode::Incremental),
            "differential" | "diff" => Ok(DeltaMode::Differential),
            _ => Err(format!("unknown delta mode {s:?}: use incremental or differential")),
        }
    }
}

impl fmt::Display for DeltaMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeltaMode::Incremental => "incremental",
            DeltaMode::Differential => "differential",
        })
    }
}

/// Signature block size: chosen from the file size, or fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlockSize {
    /// [`BlockSize::AUTO_MIN`] bytes, doubled until the file has at most [`BlockSize::AUTO_MAX_BLOCKS`]
    /// blocks, capped at [`BlockSize::AUTO_MAX`].
    #[default]
    Auto,
    /// Exactly this many bytes, within [`BlockSize::MIN`]..=[`BlockSize::MAX`].
    Fixed(u32),
}

impl BlockSize {
    /// Smallest block size accepted.
    pub const MIN: u32 = 512;
    /// Largest block size accepted.
    pub const MAX: u32 = 16 << 20;
    /// Auto's smallest block: one page, the unit in which VM images and databases write.
    pub const AUTO_MIN: u32 = 4096;
    /// Auto's largest block.
    pub const AUTO_MAX: u32 = 1 << 20;
    /// Auto keeps at most this many blocks per file, which bounds signature memory (~30 bytes each).
    pub const AUTO_MAX_BLOCKS: u64 = 1 << 22;

    /// The block size for a file of `size` bytes.
    pub fn for_size(self, size: u64) -> u32 {
        match self {
            // A fixed size is raised where the file would otherwise have more than 2^31 blocks.
            BlockSize::Fixed(b) => b.max(u32::try_from(size >> 31).unwrap_or(Self::MAX).min(Self::MAX)),
            BlockSize::Auto => {
                let mut b = Self::AUTO_MIN;
                while b < Self::AUTO_MAX && size.div_ceil(u64::from(b)) > Self::AUTO_MAX_BLOCKS {
                    b *= 2;
                }
                b
            }
        }
    }
}

impl FromStr for BlockSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(BlockSize::Auto);
        }
        let v = parse_size(s)?;
        if v < u64::from(Self::MIN) || v > u64::from(Self::MAX) {
            return Err(format!(
                "block size {s} is out of range: use auto or {}..={} bytes",
                Self::MIN,
                Self::MAX
            ));
        }
        Ok(BlockSize::Fixed(v as u32))
    }
}

impl fmt::Display for BlockSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockSize::Auto => f.write_str("auto"),
            BlockSize::Fixed(b) => f.write_str(&format_size(u64::from(*b))),
        }
    }
}

/// A percentage with two decimals, stored as basis points (1% = 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Percent(pub u32);

impl Percent {
    /// `part / whole` as basis points, saturating; `whole == 0` counts as infinitely large.
    pub fn of(part: u64, whole: u64) -> Percent {
        if whole == 0 {
            return Percent(u32::MAX);
        }
        let bp = (u128::from(part) * 10_000) / u128::from(whole);
        Percent(u32::try_from(bp).unwrap_or(u32::MAX))
    }
}

impl FromStr for Percent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().trim_end_matches('%');
        let v: f64 = t
            .parse()
            .map_err(|_| format!("invalid percentage {s:?}: use a number such as 50 or 12.5"))?;
        if !(0.0..=100_000.0).contains(&v) {
            return Err(format!("percentage {s} is out of range"));
        }
        Ok(Percent((v * 100.0).round() as u32))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(100) {
            write!(f, "{}%", self.0 / 100)
        } else {
            write!(f, "{}.{:02}%", self.0 / 100, self.0 % 100)
        }
    }
}

/// Parses `off` as `None`, anything else with `parse`.
pub fn parse_optional<T>(s: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Option<T>, String> {
    if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") {
        Ok(None)
    } else {
        parse(s).map(Some)
    }
}

/// Parses a byte size: `4096`, `64K`, `64KiB`, `25MiB`, `1.5G`, `10GB`. `K`, `Ki`, `KiB` (and M, G,
/// T) are binary multiples (1024); `KB`, `MB`, `GB`, `TB` are decimal (1000). Case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "t" | "ti" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "invalid size {s:?}: use a number with an optional unit (4096, 64K, 25MiB, 1G)"
            ));
        }
    };
    if num.is_empty() {
        return Err(format!("invalid size {s:?}: no number"));
    }
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(|| format!("size {s} is too large"));
    }
    let f: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let v = f * mult as f64;
    if !(0.0..1.8e19).contains(&v) {
        return Err(format!("size {s} is out of range"));
    }
    Ok(v.round() as u64)
}

/// Formats a byte count with a binary unit, e.g. `25 MiB`, `4 KiB`, `1.5 GiB`, `512 B`.
pub fn format_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut v = n as f64;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if (v - v.round()).abs() < 0.005 {
        format!("{} {}", v.round(), UNITS[unit])
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

/// The full policy: every field of the seeds' In-File Delta settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Incremental or differential deltas.
    pub mode: DeltaMode,
    /// Signature block size.
    pub block_size: BlockSize,
    /// Files smaller than this are stored whole whenever they change.
    pub min_delta_size: u64,
    /// A new full once this many deltas follow the last full; `None` disables the rule.
    pub max_deltas: Option<u32>,
    /// A new full when a delta would exceed this share of the full's stored size; `None` disables.
    pub max_delta_ratio: Option<Percent>,
    /// Read only changed ranges where a complete change source exists (change tracking).
    pub change_tracking: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mode: DeltaMode::Incremental,
            block_size: BlockSize::Auto,
            min_delta_size: 25 << 20,
            max_deltas: Some(100),
            max_delta_ratio: Some(Percent(50 * 100)),
            change_tracking: false,
        }
    }
}

/// Per-run changes to a policy: each `Some` replaces the stored default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyOverrides {
    /// See [`Policy::mode`].
    pub mode: Option<DeltaMode>,
    /// See [`Policy::block_size`].
    pub block_size: Option<BlockSize>,
    /// See [`Policy::min_delta_size`].
    pub min_delta_size: Option<u64>,
    /// See [`Policy::max_deltas`]; `Some(None)` turns the rule off.
    pub max_deltas: Option<Option<u32>>,
    /// See [`Policy::max_delta_ratio`]; `Some(None)` turns the rule off.
    pub max_delta_ratio: Option<Option<Percent>>,
    /// See [`Policy::change_tracking`].
    pub change_tracking: Option<bool>,
}

impl Policy {
    /// This policy with `o`'s fields applied.
    pub fn with(mut self, o: &PolicyOverrides) -> Policy {
        if let Some(v) = o.mode {
            self.mode = v;
        }
        if let Some(v) = o.block_size {
            self.block_size = v;
        }
        if let Some(v) = o.min_delta_size {
            self.min_delta_size = v;
        }
        if let Some(v) = o.max_deltas {
            self.max_deltas = v;
        }
        if let Some(v) = o.max_delta_ratio {
            self.max_delta_ratio = v;
        }
        if let Some(v) = o.change_tracking {
            self.change_tracking = v;
        }
        self
    }

    /// This policy as delta merging applies it: incremental deltas only, and neither the
    /// max-deltas nor the max-delta-ratio rule (a merge, not a new full, shortens the chain).
    pub fn for_delta_merge(self) -> Policy {
        Policy {
            mode: DeltaMode::Incremental,
            max_deltas: None,
            max_delta_ratio: None,
            ..self
        }
    }

    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.u8(match self.mode {
            DeltaMode::Incremental => 0,
            DeltaMode::Differential => 1,
        });
        e.u32(match self.block_size {
            BlockSize::Auto => 0,
            BlockSize::Fixed(b) => b,
        });
        e.u64(self.min_delta_size);
        e.u32(self.max_deltas.map_or(u32::MAX, |n| n.min(u32::MAX - 1)));
        e.u32(self.max_delta_ratio.map_or(u32::MAX, |p| p.0.min(u32::MAX - 1)));
        e.u8(u8::from(self.change_tracking));
    }

    pub(crate) fn decode(d: &mut Decoder<'_>) -> Result<Policy> {
        let mode = match d.u8()? {
            0 => DeltaMode::Incremental,
            1 => DeltaMode::Differential,
            m => return Err(d.error(format!("unknown delta mode {m}"))),
        };
        let block_size = match d.u32()? {
            0 => BlockSize::Auto,
            b if (BlockSize::MIN..=BlockSize::MAX).contains(&b) => BlockSize::Fixed(b),
            b => return Err(d.error(format!("block size {b} out of range"))),
        };
        let min_delta_size = d.u64()?;
        let max_deltas = Some(d.u32()?).filter(|&n| n != u32::MAX);
        let max_delta_ratio = Some(d.u32()?).filter(|&n| n != u32::MAX).map(Percent);
        let change_tracking = d.u8()? != 0;
        Ok(Policy {
            mode,
            block_size,
            min_delta_size,
            max_deltas,
            max_delta_ratio,
            change_tracking,
        })
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mode {}, block size {}, min delta size {}, max deltas {}, max delta ratio {}{}",
            self.mode,
            self.block_size,
            format_size(self.min_delta_size),
            self.max_deltas.map_or("off".to_string(), |n| n.to_string()),
            self.max_delta_ratio.map_or("off".to_string(), |p| p.to_string()),
            if self.change_tracking { ", change tracking" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_documented() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("25MiB"), Ok(25 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("2 mib"), Ok(2 << 20));
        assert!(parse_size("").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn auto_block_size_rule() {
        assert_eq!(BlockSize::Auto.for_size(0), 4096);
        assert_eq!(BlockSize::Auto.for_size(2 << 30), 4096);
        assert_eq!(BlockSize::Auto.for_size(16 << 30), 4096);
        assert_eq!(BlockSize::Auto.for_size((16 << 30) + 1), 8192);
        assert_eq!(BlockSize::Auto.for_size(100 << 30), 32768);
        assert_eq!(BlockSize::Auto.for_size(u64::MAX), BlockSize::AUTO_MAX);
        assert_eq!(BlockSize::Fixed(1000).for_size(1 << 40), 1000);
        assert_eq!("auto".parse(), Ok(BlockSize::Auto));
        assert_eq!("64K".parse(), Ok(BlockSize::Fixed(65536)));
        assert!("100".parse::<BlockSize>().is_err());
    }

    #[test]
    fn percent_and_off() {
        assert_eq!("50".parse(), Ok(Percent(5000)));
        assert_eq!("12.5%".parse(), Ok(Percent(1250)));
        assert_eq!(Percent(1250).to_string(), "12.50%");
        assert_eq!(
            parse_optional("off", |s| s.parse::<u32>().map_err(|e| e.to_string())),
            Ok(None)
        );
        assert_eq!(Percent::of(1, 2), Percent(5000));
        assert_eq!(Percent::of(1, 0), Percent(u32::MAX));
    }

    #[test]
    fn policy_roundtrips() {
        let p = Policy {
            mode: DeltaMode::Differential,
            block_size: BlockSize::Fixed(8192),
            min_delta_size: 1,
            max_deltas: None,
            max_delta_ratio: Some(Percent(1234)),
            change_tracking: true,
        };
        let mut e = Encoder::new();
        p.encode(&mut e);
        let b = e.into_bytes();
        assert_eq!(Policy::decode(&mut Decoder::new(&b, "p")).unwrap(), p);
        for cut in 0..b.len() {
            assert!(Policy::decode(&mut Decoder::new(&b[..cut], "p")).is_err(), "cut {cut}");
        }
        let mut bad_mode = b.clone();
        bad_mode[0] = 2;
        assert!(Policy::decode(&mut Decoder::new(&bad_mode, "p")).is_err());
        let mut bad_block = b.clone();
        bad_block[1..5].copy_from_slice(&100u32.to_le_bytes());
        assert!(Policy::decode(&mut Decoder::new(&bad_block, "p")).is_err());
    }

    proptest::proptest! {
        #[test]
        fn decoding_garbage_never_panics(data: Vec<u8>) {
            let _ = Policy::decode(&mut Decoder::new(&data, "g"));
        }
    }
}
