//! Why a file was stored as a new full version, and why change tracking did not give its
//! changes: enums a caller can match, with the text the reports show.

use std::fmt;

use crate::format::policy::Percent;

/// Why a file was stored as a new full version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FullReason {
    /// The file has no previous version.
    FirstVersion,
    /// The previous version was stored whole (it was smaller than the minimum delta size).
    PreviousStoredWhole,
    /// The previous version's record (or its chain's full's) cannot be read; the error.
    PreviousUnreadable(String),
    /// The max-deltas rule: this many deltas follow the last full.
    MaxDeltas(u32),
    /// The max-delta-ratio rule: the delta grew past this share of the full.
    MaxDeltaRatio(Percent),
    /// The base's signature cannot be read; the error.
    BaseSignatureUnreadable(String),
}

impl fmt::Display for FullReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FullReason::FirstVersion => f.write_str("first version"),
            FullReason::PreviousStoredWhole => f.write_str("previous version was stored whole"),
            FullReason::PreviousUnreadable(e) => write!(f, "previous version unreadable ({e})"),
            FullReason::MaxDeltas(n) => write!(f, "{n} deltas since the last full (max deltas)"),
            FullReason::MaxDeltaRatio(p) => write!(f, "delta larger than {p} of the full (max delta ratio)"),
            FullReason::BaseSignatureUnreadable(e) => write!(f, "base signature unreadable ({e})"),
        }
    }
}

/// Why change tracking did not give a file's changes, so that it was compared (read whole).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fallback {
    /// The previous version was stored whole: there is no signature to build a delta on.
    PreviousStoredWhole,
    /// Differential mode after incremental deltas: the base is not the previous version.
    DifferentialAfterIncremental,
    /// The previous version has no hash tree (the first change-tracked backup of the file).
    NoHashTree,
    /// The changes cover most of the file: a compare costs no more reads and stores less.
    MostOfFileChanged,
    /// A block the changes said was unchanged differs from the signature (the sample check).
    SampleDiffers {
        /// Where the block starts.
        offset: u64,
    },
    /// No change source has a complete record of this file's changes.
    NoCompleteRecord,
    /// What a change source said about why it has no record (e.g. the tracker is not running).
    Source(String),
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fallback::PreviousStoredWhole => f.write_str("previous version was stored whole"),
            Fallback::DifferentialAfterIncremental => f.write_str("differential mode after incremental deltas"),
            Fallback::NoHashTree => f.write_str("the previous version has no hash tree (first change-tracked backup)"),
            Fallback::MostOfFileChanged => f.write_str("changes cover most of the file; compared instead"),
            Fallback::SampleDiffers { offset } => write!(
                f,
                "a block reported unchanged differs (block at offset {offset}); compared instead"
            ),
            Fallback::NoCompleteRecord => f.write_str("no complete record of changes for this file"),
            Fallback::Source(note) => f.write_str(note),
        }
    }
}

/// The reason a report gives for a file: the full's reason, the fallback's, or both.
pub(crate) fn describe(full: Option<&FullReason>, fallback: Option<&Fallback>) -> Option<String> {
    match (full, fallback) {
        (None, None) => None,
        (Some(r), None) => Some(r.to_string()),
        (None, Some(f)) => Some(format!("change tracking: {f}")),
        (Some(r), Some(f)) => Some(format!("{r}; change tracking: {f}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_the_reports_show_them() {
        assert_eq!(describe(None, None), None);
        assert_eq!(
            describe(Some(&FullReason::MaxDeltaRatio(Percent(5000))), None).unwrap(),
            "delta larger than 50% of the full (max delta ratio)"
        );
        assert_eq!(
            describe(Some(&FullReason::FirstVersion), Some(&Fallback::NoCompleteRecord)).unwrap(),
            "first version; change tracking: no complete record of changes for this file"
        );
        assert_eq!(
            describe(None, Some(&Fallback::SampleDiffers { offset: 8192 })).unwrap(),
            "change tracking: a block reported unchanged differs (block at offset 8192); compared instead"
        );
    }
}
