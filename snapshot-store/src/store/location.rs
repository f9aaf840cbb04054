//! Where a store lives, as `--store` names it: a local directory, or a bucket prefix of an
//! S3-compatible object store (`s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]`). Parsing only: the
//! local directory is opened by [`Store`](crate::Store); object stores are not served yet.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// A store's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A directory on this machine.
    Local(PathBuf),
    /// A bucket (and key prefix) of an S3-compatible object store.
    S3(S3Location),
}

/// A bucket prefix of an S3-compatible object store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// `https` or `http`.
    pub tls: bool,
    /// The endpoint's host name or address (IPv6 without brackets).
    pub host: String,
    /// The endpoint's port, if given.
    pub port: Option<u16>,
    /// The bucket.
    pub bucket: String,
    /// The key prefix inside the bucket (no leading or trailing `/`; empty for the whole bucket).
    pub prefix: String,
}

/// Why a `--store` value names no store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocationError {
    /// A URL of a scheme no store can live at.
    #[error(
        "store {given:?} is a {scheme}: URL; a store is a local directory or s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX] (for a directory of that name write ./{given})"
    )]
    UnknownScheme {
        /// The value given.
        given: String,
        /// Its scheme.
        scheme: String,
    },
    /// An `s3:` location that does not parse.
    #[error("store {given:?} is not an S3 location: {why}; write s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]")]
    BadS3 {
        /// The value given.
        given: String,
        /// What is wrong.
        why: String,
    },
    /// Plain HTTP to a host other than loopback.
    #[error("store {given:?} would send the store unencrypted to {host}; use https, or allow plain http explicitly")]
    PlainHttp {
        /// The value given.
        given: String,
        /// The host.
        host: String,
    },
}

impl StoreLocation {
    /// Parses a `--store` value. Plain `http` is accepted only to loopback hosts unless
    /// `allow_http`. A value without a URL scheme (two or more characters before a colon, so
    /// that `C:\store` is a path) is a local directory.
    pub fn parse(given: &str, allow_http: bool) -> Result<StoreLocation, LocationError> {
        let Some(scheme) = url_scheme(given) else {
            return Ok(StoreLocation::Local(PathBuf::from(given)));
        };
        if !scheme.eq_ignore_ascii_case("s3") {
            return Err(LocationError::UnknownScheme {
                given: given.into(),
                scheme: scheme.into(),
            });
        }
        let bad = |why: &str| LocationError::BadS3 {
            given: given.into(),
            why: why.into(),
        };
        let url = &given[scheme.len() + 1..];
        let (tls, rest) = if let Some(r) = strip_prefix_ci(url, "https://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(url, "http://") {
            (false, r)
        } else {
            return Err(bad("the endpoint must start with http:// or https://"));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return Err(bad(
                "credentials do not go in the location: use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("the host or port does not parse"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let path = path.split(['?', '#']).next().unwrap_or("");
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let bucket = parts.next().ok_or_else(|| bad("no bucket"))?.to_string();
        if !valid_bucket(&bucket) {
            return Err(bad(&format!(
                "bucket {bucket:?} is not a valid name (3 to 63 lowercase letters, digits, '-' and '.')"
            )));
        }
        let prefix = parts.collect::<Vec<_>>().join("/");
        if prefix.split('/').any(|p| p == "." || p == "..") {
            return Err(bad("the prefix has . or .. in it"));
        }
        if !tls && !allow_http && !is_loopback(&host) {
            return Err(LocationError::PlainHttp {
                given: given.into(),
                host,
            });
        }
        Ok(StoreLocation::S3(S3Location {
            tls,
            host,
            port,
            bucket,
            prefix,
        }))
    }
}

impl S3Location {
    /// The endpoint's URL (`https://host:port`), without the bucket.
    pub fn endpoint(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let scheme = if self.tls { "https" } else { "http" };
        match self.port {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        }
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3:{}/{}", self.endpoint(), self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

/// The scheme of a value that looks like a URL: two or more letters, digits, `+`, `-` or `.`
/// before a colon, the first a letter.
fn url_scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once(':')?;
    let ok = scheme.len() >= 2
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then_some(scheme)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &s[prefix.len()..])
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p > 0);
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        return match after {
            "" => Some((host.to_string(), None)),
            p => Some((host.to_string(), Some(port(p.strip_prefix(':')?)?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_ascii_lowercase(), Some(port(p)?))),
        None => Some((authority.to_ascii_lowercase(), None)),
    }
}

/// S3's bucket naming rules (the common subset every implementation accepts).
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !b.contains("..")
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(given: &str) -> S3Location {
        match StoreLocation::parse(given, false) {
            Ok(StoreLocation::S3(l)) => l,
            other => panic!("{given}: {other:?}"),
        }
    }

    #[test]
    fn s3_locations_parse_and_print_back() {
        let l = s3("s3:https://s3.eu-west-1.amazonaws.com/my-backups/laptop/daily");
        assert!(l.tls);
        assert_eq!((l.host.as_str(), l.port), ("s3.eu-west-1.amazonaws.com", None));
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("my-backups", "laptop/daily"));
        assert_eq!(
            l.to_string(),
            "s3:https://s3.eu-west-1.amazonaws.com/my-backups/laptop/daily"
        );
        let l = s3("s3:http://127.0.0.1:8333/bucket/");
        assert_eq!((l.port, l.prefix.as_str(), l.tls), (Some(8333), "", false));
        assert_eq!(l.endpoint(), "http://127.0.0.1:8333");
        let l = s3("S3:HTTP://[::1]:9000/b1c");
        assert_eq!((l.host.as_str(), l.port), ("::1", Some(9000)));
        assert_eq!(l.endpoint(), "http://[::1]:9000");
        assert_eq!(s3("s3:http://localhost/bkt//a//b").prefix, "a/b");
    }

    #[test]
    fn paths_stay_paths_and_bad_locations_say_why() {
        for path in ["/srv/store", "store", "./s3:x", "C:\\backups", "c:store"] {
            assert_eq!(
                StoreLocation::parse(path, false),
                Ok(StoreLocation::Local(PathBuf::from(path))),
                "{path}"
            );
        }
        let err = |given: &str| StoreLocation::parse(given, false).unwrap_err().to_string();
        assert!(err("sftp:host:/dir").contains("sftp: URL"));
        assert!(err("https://host/bucket").contains("https: URL"));
        assert!(err("s3:ftp://host/b").contains("http:// or https://"));
        assert!(err("s3:https://host").contains("no bucket"));
        assert!(err("s3:https://host/Bad_Bucket").contains("not a valid name"));
        assert!(err("s3:https://host:0/b").contains("port"));
        assert!(err("s3:https://key:secret@host/bucket").contains("AWS_ACCESS_KEY_ID"));
        assert!(err("s3:https://host/bucket/../x").contains(".."));
        assert!(err("s3:http://backup.example.com/bucket").contains("unencrypted"));
        assert!(StoreLocation::parse("s3:http://backup.example.com/bucket", true).is_ok());
    }
}
