//! PROPFIND (RFC 4918 §9.1): the request body (all properties, their names, or a chosen set)
//! and the multistatus answer for a node and, at depth 1, its children. Depth infinity (and a
//! missing Depth, which means it) is refused with 403 and `propfind-finite-depth`, as the RFC
//! allows: a store of many snapshots would answer with millions of entries.

use std::fmt::Write;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

use super::href::Client;
use super::meta;
use crate::view::{Attr, Kind};

const DAV: &str = "DAV:";
const MS: &str = "urn:schemas-microsoft-com:";

/// What the client asked for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Wanted {
    /// Every property (an empty body, or `allprop`).
    All,
    /// The names of the properties only.
    Names,
    /// These properties, by namespace and local name.
    Props(Vec<(String, String)>),
}

/// Why a PROPFIND body was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadBody(pub String);

/// Parses a PROPFIND request body.
pub(super) fn parse(body: &[u8]) -> Result<Wanted, BadBody> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Wanted::All);
    }
    let mut reader = quick_xml::NsReader::from_reader(body);
    let mut buf = Vec::new();
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut wanted: Option<Wanted> = None;
    let mut in_prop = false;
    loop {
        let (ns, ev) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|e| BadBody(format!("malformed XML: {e}")))?;
        let ns = match ns {
            ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
            _ => String::new(),
        };
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match depth {
                    0 if ns == DAV && local == "propfind" => root_seen = true,
                    0 => return Err(BadBody(format!("the body is <{local}>, not a DAV: propfind"))),
                    1 if ns == DAV && local == "allprop" => wanted = Some(Wanted::All),
                    1 if ns == DAV && local == "propname" => wanted = Some(Wanted::Names),
                    1 if ns == DAV && local == "prop" => {
                        if !matches!(wanted, Some(Wanted::Props(_))) {
                            wanted = Some(Wanted::Props(Vec::new()));
                        }
                        in_prop = !empty;
                    }
                    2 if in_prop => {
                        if !is_name(&local) {
                            return Err(BadBody(format!("{local:?} is not an XML name")));
                        }
                        if let Some(Wanted::Props(p)) = &mut wanted {
                            p.push((ns, local));
                        }
                    }
                    _ => {}
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    in_prop = false;
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !root_seen {
        return Err(BadBody("no propfind element".into()));
    }
    // `<propfind/>` alone asks for nothing in particular: everything.
    Ok(wanted.unwrap_or(Wanted::All))
}

/// True for names that can stand as an element name when echoed back (XML NCName, ASCII
/// letters, digits, `-`, `_`, `.`, and any non-ASCII character, not starting with a digit,
/// `-` or `.`).
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || !c.is_ascii())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || !c.is_ascii())
}

/// One node of an answer.
pub(super) struct Item<'a> {
    /// Its href (percent-encoded).
    pub href: String,
    /// Its name as backed up (empty for the root).
    pub name: &'a [u8],
    /// Its attributes.
    pub attr: Attr,
}

/// Text escaped for XML.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // XML 1.0 cannot carry most control characters, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The properties a node has, in the order they are listed: (namespace, name).
fn names_of(a: &Attr, client: Client) -> Vec<(&'static str, &'static str)> {
    let mut names = vec![
        (DAV, "resourcetype"),
        (DAV, "displayname"),
        (DAV, "getlastmodified"),
        (DAV, "creationdate"),
        (DAV, "getetag"),
        (DAV, "supportedlock"),
        (DAV, "lockdiscovery"),
    ];
    if a.kind == Kind::File {
        names.push((DAV, "getcontentlength"));
        names.push((DAV, "getcontenttype"));
    }
    if client == Client::Microsoft {
        names.extend([
            (MS, "Win32FileAttributes"),
            (MS, "Win32CreationTime"),
            (MS, "Win32LastModifiedTime"),
            (MS, "Win32LastAccessTime"),
        ]);
    }
    names
}

/// The element of property `(ns, name)` of `item`, or `None` when it has none.
fn value(item: &Item<'_>, ns: &str, name: &str, client: Client) -> Option<String> {
    let a = &item.attr;
    let dir = a.kind == Kind::Dir;
    let text = |tag: &str, v: &str| format!("<{tag}>{}</{tag}>", escape(v));
    Some(match (ns, name) {
        (DAV, "resourcetype") if dir => "<D:resourcetype><D:collection/></D:resourcetype>".into(),
        (DAV, "resourcetype") => "<D:resourcetype/>".into(),
        (DAV, "displayname") => text("D:displayname", &super::href::display(item.name, client)),
        (DAV, "getlastmodified") => text("D:getlastmodified", &meta::http_date(a)),
        (DAV, "creationdate") => text("D:creationdate", &meta::rfc3339(a)),
        (DAV, "getetag") => text("D:getetag", &meta::etag(a)),
        (DAV, "supportedlock") => "<D:supportedlock/>".into(),
        (DAV, "lockdiscovery") => "<D:lockdiscovery/>".into(),
        (DAV, "getcontentlength") if !dir => text("D:getcontentlength", &a.size.to_string()),
        (DAV, "getcontenttype") => text("D:getcontenttype", meta::content_type(item.name, a)?),
        // Read-only, and a directory when it is one.
        (MS, "Win32FileAttributes") => text("Z:Win32FileAttributes", if dir { "00000011" } else { "00000001" }),
        (MS, "Win32CreationTime" | "Win32LastModifiedTime" | "Win32LastAccessTime") => {
            format!("<Z:{name}>{}</Z:{name}>", meta::http_date(a))
        }
        _ => return None,
    })
}

/// An empty element naming property `(ns, name)`, for `propname` and 404 propstats.
fn bare(ns: &str, name: &str) -> String {
    match ns {
        DAV => format!("<D:{name}/>"),
        MS => format!("<Z:{name}/>"),
        "" => format!("<{name} xmlns=\"\"/>"),
        _ => format!("<X:{name} xmlns:X=\"{}\"/>", escape(ns)),
    }
}

fn propstat(out: &mut String, props: &str, status: &str) {
    let _ = write!(
        out,
        "<D:propstat><D:prop>{props}</D:prop><D:status>HTTP/1.1 {status}</D:status></D:propstat>"
    );
}

/// The multistatus body for `items`.
pub(super) fn multistatus(items: &[Item<'_>], wanted: &Wanted, client: Client) -> String {
    let mut out = String::with_capacity(200 + items.len() * 600);
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    let _ = write!(out, "<D:multistatus xmlns:D=\"{DAV}\" xmlns:Z=\"{MS}\">");
    for item in items {
        let _ = write!(out, "<D:response><D:href>{}</D:href>", escape(&item.href));
        match wanted {
            Wanted::All => {
                let found: String = names_of(&item.attr, client)
                    .into_iter()
                    .filter_map(|(ns, n)| value(item, ns, n, client))
                    .collect();
                propstat(&mut out, &found, "200 OK");
            }
            Wanted::Names => {
                let names: String = names_of(&item.attr, client)
                    .into_iter()
                    .map(|(ns, n)| bare(ns, n))
                    .collect();
                propstat(&mut out, &names, "200 OK");
            }
            Wanted::Props(props) => {
                let (mut found, mut missing) = (String::new(), String::new());
                for (ns, n) in props {
                    match value(item, ns, n, client) {
                        Some(v) => found.push_str(&v),
                        None => missing.push_str(&bare(ns, n)),
                    }
                }
                // Every response carries a propstat, even for an empty `prop`.
                if !found.is_empty() || missing.is_empty() {
                    propstat(&mut out, &found, "200 OK");
                }
                if !missing.is_empty() {
                    propstat(&mut out, &missing, "404 Not Found");
                }
            }
        }
        out.push_str("</D:response>");
    }
    out.push_str("</D:multistatus>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bodies_parse() {
        assert_eq!(parse(b""), Ok(Wanted::All));
        assert_eq!(
            parse(br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#),
            Ok(Wanted::All)
        );
        assert_eq!(
            parse(br#"<propfind xmlns="DAV:"><propname/></propfind>"#),
            Ok(Wanted::Names)
        );
        let body = br#"<?xml version="1.0" encoding="utf-8" ?>
            <D:propfind xmlns:D="DAV:" xmlns:A="http://apple.com/ns/">
              <D:prop><D:getcontentlength/><D:resourcetype></D:resourcetype><A:quota/></D:prop>
            </D:propfind>"#;
        assert_eq!(
            parse(body),
            Ok(Wanted::Props(vec![
                (DAV.into(), "getcontentlength".into()),
                (DAV.into(), "resourcetype".into()),
                ("http://apple.com/ns/".into(), "quota".into()),
            ]))
        );
        assert!(
            parse(b"<propfind><allprop/></propfind>").is_err(),
            "not in the DAV: namespace"
        );
        assert!(parse(br#"<x xmlns="DAV:"/>"#).is_err());
        assert!(parse(b"<<<").is_err());
        assert!(parse(br#"<D:propfind xmlns:D="DAV:"><D:prop><a&amp;b/></D:prop></D:propfind>"#).is_err());
        assert_eq!(
            parse(br#"<D:propfind xmlns:D="DAV:"><D:prop/></D:propfind>"#),
            Ok(Wanted::Props(Vec::new()))
        );
    }

    #[test]
    fn unknown_properties_are_404_and_text_is_escaped() {
        let attr = Attr {
            ino: 9,
            kind: Kind::File,
            size: 42,
            blocks: 0,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            rdev: 0,
            immutable: true,
            content: None,
        };
        let item = Item {
            href: "/a%26b".into(),
            name: b"a&b<",
            attr,
        };
        let wanted = Wanted::Props(vec![
            (DAV.into(), "getcontentlength".into()),
            ("urn:x".into(), "nope".into()),
        ]);
        let xml = multistatus(&[item], &wanted, Client::Plain);
        assert!(xml.contains("<D:getcontentlength>42</D:getcontentlength>"), "{xml}");
        assert!(xml.contains(r#"<X:nope xmlns:X="urn:x"/>"#), "{xml}");
        assert!(xml.contains("HTTP/1.1 404 Not Found"), "{xml}");
        let all = multistatus(
            &[Item {
                href: "/x".into(),
                name: b"a&b<",
                attr,
            }],
            &Wanted::All,
            Client::Plain,
        );
        assert!(all.contains("<D:displayname>a&amp;b&lt;</D:displayname>"), "{all}");
        assert!(!all.contains("HTTP/1.1 404"), "{all}");
        let none = multistatus(
            &[Item {
                href: "/x".into(),
                name: b"x",
                attr,
            }],
            &Wanted::Props(Vec::new()),
            Client::Plain,
        );
        assert!(none.contains("<D:propstat><D:prop></D:prop>"), "{none}");
    }
}
