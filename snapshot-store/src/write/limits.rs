//! The numeric rules every path of a write shares: compression, the delta-ratio limit, and how
//! often signatures and extent maps are stored complete.

use crate::format::policy::{Percent, Policy};
use crate::format::version::FileVersion;
use crate::write::reasons::FullReason;

/// zstd level for data.
pub const COMPRESSION_LEVEL: i32 = 3;
/// A self-contained signature is stored at least every this many run-encoded ones.
pub const SIGNATURE_CHAIN_MAX: u16 = 16;
/// An incremental version at a depth divisible by this stores its flattened extent map.
pub const MAP_CHECKPOINT_INTERVAL: u32 = 16;
/// The delta-ratio rule never replaces a delta smaller than this by a full: such a delta costs
/// less than re-storing any full worth the name (and a full of only holes stores nothing).
pub const RATIO_FLOOR: u64 = 64 << 10;

/// The most stored bytes a delta's literal object may have under `policy`, its chain's full being
/// `full`; `None` when the delta-ratio rule is off.
pub fn ratio_limit(policy: &Policy, full: &FileVersion) -> Option<u64> {
    policy
        .max_delta_ratio
        .map(|p| ((u128::from(full.literal_stored) * u128::from(p.0) / 10_000) as u64).max(RATIO_FLOOR))
}

/// Why a delta was replaced by a full under `policy`'s delta-ratio rule.
pub fn ratio_reason(policy: &Policy) -> FullReason {
    FullReason::MaxDeltaRatio(policy.max_delta_ratio.unwrap_or(Percent(0)))
}
