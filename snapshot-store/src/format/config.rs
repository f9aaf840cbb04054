//! The store's configuration file (`config`): its id, creation time, default delta policy and
//! (format version 2 and later) retention policy. Its envelope's version is the store's format version.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use crate::error::Result;
use crate::format::FormatVersion;
use crate::format::codec::{Decoder, Encoder};
use crate::format::policy::Policy;
use crate::format::retention::Retention;

/// The store's configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Unique id of this store (blake3 of its path, the creating process and the time).
    pub store_id: [u8; 16],
    /// Creation time, ns since the epoch.
    pub created_ns: i64,
    /// The default policy for `write`.
    pub policy: Policy,
    /// The retention policy (the default, all off, in a version-1 store).
    pub retention: Retention,
    /// The store's format version: the version `config` was written with.
    pub format: FormatVersion,
}

impl StoreConfig {
    /// Encodes the payload of `config` in the layout of `self.format`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.raw(&self.store_id);
        e.i64(self.created_ns);
        self.policy.encode(&mut e);
        if self.format >= FormatVersion::V2 {
            self.retention.encode(&mut e);
        }
        e.into_bytes()
    }

    /// Decodes the payload of a `config` of format `format`; `what` names it in errors.
    pub(crate) fn decode(payload: &[u8], format: FormatVersion, what: &str) -> Result<Self> {
        let mut d = Decoder::new(payload, what);
        let mut store_id = [0u8; 16];
        store_id.copy_from_slice(d.take(16)?);
        let created_ns = d.i64()?;
        let policy = Policy::decode(&mut d)?;
        let retention = match format {
            FormatVersion::V1 => Retention::default(),
            // Version 3 changed version records only.
            FormatVersion::V2 | FormatVersion::V3 => Retention::decode(&mut d)?,
        };
        d.finish()?;
        Ok(StoreConfig {
            store_id,
            created_ns,
            policy,
            retention,
            format,
        })
    }

    /// The first 8 bytes of the store id as 16 hex digits (names this store's reference copies).
    pub fn short_id(&self) -> String {
        self.store_id.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(format: FormatVersion) -> StoreConfig {
        StoreConfig {
            store_id: [7; 16],
            created_ns: -3,
            policy: Policy::default(),
            retention: Retention {
                delta_merge: format >= FormatVersion::V2,
                ..Retention::default()
            },
            format,
        }
    }

    #[test]
    fn roundtrip_and_truncation() {
        for (format, len) in [
            (FormatVersion::V1, 46),
            (FormatVersion::V2, 46 + Retention::ENCODED_LEN),
            (FormatVersion::V3, 46 + Retention::ENCODED_LEN),
        ] {
            let c = sample(format);
            let p = c.encode();
            assert_eq!(p.len(), len);
            assert_eq!(StoreConfig::decode(&p, format, "c").unwrap(), c);
            for cut in 0..p.len() {
                assert!(StoreConfig::decode(&p[..cut], format, "c").is_err(), "cut {cut}");
            }
            let mut long = p.clone();
            long.push(0);
            assert!(StoreConfig::decode(&long, format, "c").is_err());
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data: Vec<u8>) {
            let _ = StoreConfig::decode(&data, FormatVersion::V1, "g");
            let _ = StoreConfig::decode(&data, FormatVersion::V2, "g");
        }
    }
}
