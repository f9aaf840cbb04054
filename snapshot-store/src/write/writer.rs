//! What writing one file needs from the snapshot write it is part of.

use crate::format::policy::Policy;
use crate::store::Store;
use crate::store::staging::Staging;
use crate::tracking::Tracking;
use crate::write::progress::WriteProgress;

/// Writes files into a staging area following a policy (see `write::file` for the entry point,
/// `write::compare` and `write::tracked` for the two ways a version is built).
pub(crate) struct FileWriter<'a> {
    /// The store.
    pub store: &'a Store,
    /// Where new files go until the commit.
    pub staging: &'a Staging,
    /// The policy in force.
    pub policy: &'a Policy,
    /// Progress counters.
    pub progress: &'a WriteProgress,
    /// Change tracking, when on.
    pub tracking: Option<&'a Tracking>,
}
