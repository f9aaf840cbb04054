//! Request paths and hrefs. A request path is percent-decoded into backed-up names (through the
//! Windows name encoder for Microsoft clients, which cannot hold every name); hrefs and display
//! names go back the same way. Every byte outside the unreserved set is percent-encoded, so
//! names that are not UTF-8 survive the trip exactly.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::view::names::{from_windows_name, windows_name};

/// Everything but RFC 3986's unreserved characters is encoded.
const SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// How a client wants names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Client {
    /// Names as backed up.
    Plain,
    /// Windows' WebDAV mini-redirector (Explorer): names through the Windows encoder.
    Microsoft,
}

impl Client {
    /// The kind of client that sent a request with this `User-Agent`.
    pub(super) fn of(user_agent: Option<&str>) -> Client {
        match user_agent {
            Some(ua) if ua.starts_with("Microsoft-WebDAV-MiniRedir") || ua.starts_with("Microsoft Office") => {
                Client::Microsoft
            }
            _ => Client::Plain,
        }
    }
}

/// A request path that names nothing a store can hold (`..`, or a NUL byte).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadPath;

/// The names along request path `path` (already without its query).
pub(super) fn components(path: &str, client: Client) -> Result<Vec<Vec<u8>>, BadPath> {
    let mut out = Vec::new();
    for part in path.split('/') {
        let raw: Vec<u8> = percent_decode_str(part).collect();
        // Checked after decoding Windows names too: U+F02E U+F02E decodes to `..`.
        let name = match (client, std::str::from_utf8(&raw)) {
            (Client::Microsoft, Ok(s)) => from_windows_name(s),
            _ => raw,
        };
        match name.as_slice() {
            b"" | b"." => continue,
            b".." => return Err(BadPath),
            r if r.contains(&0) || r.contains(&b'/') => return Err(BadPath),
            _ => out.push(name),
        }
    }
    Ok(out)
}

/// One name as an href path segment.
pub(super) fn segment(name: &[u8], client: Client) -> String {
    match client {
        Client::Microsoft => utf8_percent_encode(&windows_name(name), SET).to_string(),
        Client::Plain => percent_encoding::percent_encode(name, SET).to_string(),
    }
}

/// The absolute href of the names `path` (a collection's ends with `/`).
pub(super) fn href(path: &[Vec<u8>], client: Client, collection: bool) -> String {
    let mut out = String::from("/");
    for (i, name) in path.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(&segment(name, client));
    }
    if collection && !path.is_empty() {
        out.push('/');
    }
    out
}

/// A name as text for people (`displayname`, the HTML index).
pub(super) fn display(name: &[u8], client: Client) -> String {
    match client {
        Client::Microsoft => windows_name(name),
        Client::Plain => String::from_utf8_lossy(name).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_and_hrefs_encode_every_byte() {
        let names = components("/2026-11-21T07-15-00Z/a%20b/%FF%3A.txt", Client::Plain).unwrap();
        assert_eq!(names, [&b"2026-11-21T07-15-00Z"[..], b"a b", b"\xff:.txt"]);
        assert_eq!(
            href(&names, Client::Plain, false),
            "/2026-11-21T07-15-00Z/a%20b/%FF%3A.txt"
        );
        assert_eq!(
            href(&names, Client::Plain, true),
            "/2026-11-21T07-15-00Z/a%20b/%FF%3A.txt/"
        );
        assert_eq!(href(&[], Client::Plain, true), "/");
        assert_eq!(components("//./x/", Client::Plain).unwrap(), [b"x".to_vec()]);
        assert_eq!(components("/a/../b", Client::Plain), Err(BadPath));
        assert_eq!(components("/a%00b", Client::Plain), Err(BadPath));
        assert_eq!(components("/a%2Fb", Client::Plain), Err(BadPath));
    }

    #[test]
    fn microsoft_clients_get_names_windows_can_hold_and_back() {
        let name = b"what?\xff".to_vec();
        let seg = segment(&name, Client::Microsoft);
        assert!(!seg.contains("%3F") && !seg.contains("%FF"), "{seg}");
        assert_eq!(
            components(&format!("/{seg}"), Client::Microsoft).unwrap(),
            std::slice::from_ref(&name)
        );
        assert_eq!(display(&name, Client::Plain), "what?\u{fffd}");
        assert_eq!(
            Client::of(Some("Microsoft-WebDAV-MiniRedir/10.0.19045")),
            Client::Microsoft
        );
        assert_eq!(Client::of(Some("curl/8.5")), Client::Plain);
        assert_eq!(Client::of(None), Client::Plain);
        assert_eq!(components("/%EF%80%AE%EF%80%AE/x", Client::Microsoft), Err(BadPath));
        assert_eq!(
            components("/a%EF%80%AFb", Client::Microsoft),
            Err(BadPath),
            "an encoded /"
        );
    }
}
