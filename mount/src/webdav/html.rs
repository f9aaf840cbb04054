//! The HTML index a browser gets for a directory: its entries with sizes and times, each a
//! link, directories first marked with a slash.

use std::fmt::Write;

use super::href::{self, Client};
use super::meta;
use super::propfind::escape;
use crate::view::{Attr, Kind};

/// The index page of the directory at `path` (names from the root) holding `entries`.
pub(super) fn index(path: &[Vec<u8>], entries: &[(Vec<u8>, Attr)], client: Client) -> String {
    let title = format!(
        "/{}",
        path.iter()
            .map(|n| href::display(n, client))
            .collect::<Vec<_>>()
            .join("/")
    );
    let mut out = String::with_capacity(400 + entries.len() * 200);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>backup-fs {t}</title>\
         <style>body{{font-family:sans-serif}}td{{padding:0 1em}}td.n{{text-align:right}}</style>\
         </head><body><h1>{t}</h1><table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n",
        t = escape(&title)
    );
    if !path.is_empty() {
        let up = href::href(&path[..path.len() - 1], client, true);
        let _ = writeln!(
            out,
            "<tr><td><a href=\"{}\">../</a></td><td></td><td></td></tr>",
            escape(&up)
        );
    }
    let mut sorted: Vec<&(Vec<u8>, Attr)> = entries.iter().collect();
    sorted.sort_by(|(n, a), (m, b)| (a.kind != Kind::Dir, n).cmp(&(b.kind != Kind::Dir, m)));
    for (name, a) in sorted {
        let dir = a.kind == Kind::Dir;
        let mut full = path.to_vec();
        full.push(name.clone());
        let link = href::href(&full, client, dir);
        let shown = format!("{}{}", href::display(name, client), if dir { "/" } else { "" });
        let size = if dir { String::new() } else { a.size.to_string() };
        let _ = writeln!(
            out,
            "<tr><td><a href=\"{}\">{}</a></td><td class=\"n\">{size}</td><td>{}</td></tr>",
            escape(&link),
            escape(&shown),
            meta::rfc3339(a)
        );
    }
    out.push_str("</table></body></html>\n");
    out
}
