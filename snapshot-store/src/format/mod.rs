//! The format layer: bytes to structs and back, for every file kind of a store. Nothing here
//! touches the file system; every decoder names what it decodes in its errors and never panics,
//! whatever the input. `docs/FORMAT.md` is the normative description of these bytes.

#[cfg(unix)]
pub(crate) mod changelog;
pub(crate) mod codec;
pub(crate) mod condemned;
pub(crate) mod config;
pub(crate) mod delta;
pub(crate) mod envelope;
pub(crate) mod extent;
pub(crate) mod hashtree;
pub(crate) mod magic;
pub(crate) mod manifest;
pub(crate) mod object;
pub(crate) mod policy;
pub(crate) mod reftable;
pub(crate) mod retention;
pub(crate) mod runs;
pub(crate) mod signature;
pub(crate) mod snapshot;
pub(crate) mod time;
pub(crate) mod tree_builder;
pub(crate) mod tree_hasher;
pub(crate) mod version;

use crate::error::{Error, Result};

/// A version of the store format. Every file kind carries one (see `docs/FORMAT.md`,
/// "Versioning"); a reader refuses a file of a version newer than [`FormatVersion::CURRENT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FormatVersion {
    /// The first format, written since 2026-11.
    V1 = 1,
    /// Retention (2026-12): the retention policy in `config`, prune's files. A file whose
    /// layout did not change is still written as version 1.
    V2 = 2,
    /// Lineages (2026-12): version records that name the versions under their base, so that a
    /// remote store's reader fetches a chain's records at once.
    V3 = 3,
}

impl FormatVersion {
    /// The newest version this build reads and writes.
    pub const CURRENT: FormatVersion = FormatVersion::V3;

    /// The number written on disk.
    pub const fn number(self) -> u16 {
        self as u16
    }

    /// The version of a file that says `found` (`what` names the file in errors): newer
    /// versions are [`Error::UnsupportedVersion`], version 0 is corrupt.
    pub fn check(found: u16, what: &str) -> Result<FormatVersion> {
        FormatVersion::try_from(found).map_err(|()| {
            if found == 0 {
                Error::corrupt(what, "format version 0")
            } else {
                Error::UnsupportedVersion {
                    what: what.to_string(),
                    found,
                    supported: FormatVersion::CURRENT.number(),
                }
            }
        })
    }
}

impl TryFrom<u16> for FormatVersion {
    type Error = ();

    fn try_from(v: u16) -> std::result::Result<Self, ()> {
        match v {
            1 => Ok(FormatVersion::V1),
            2 => Ok(FormatVersion::V2),
            3 => Ok(FormatVersion::V3),
            _ => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_check() {
        assert_eq!(FormatVersion::check(1, "f").unwrap(), FormatVersion::V1);
        assert_eq!(FormatVersion::check(2, "f").unwrap(), FormatVersion::V2);
        assert_eq!(FormatVersion::check(3, "f").unwrap(), FormatVersion::V3);
        assert!(matches!(FormatVersion::check(0, "f"), Err(Error::Corrupt { .. })));
        let err = FormatVersion::check(4, "file f").unwrap_err();
        assert!(
            matches!(
                err,
                Error::UnsupportedVersion {
                    found: 4,
                    supported: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("file f"));
    }
}
