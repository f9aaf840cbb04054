//! The crate's folders are its layers (see the crate doc): a module may use modules of its own
//! layer or below, never above, and no two files may use each other, directly or through others.
//! This test reads the sources and checks both, so that a change that breaks the architecture
//! fails here rather than in a review.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom first; modules at the crate root not listed here may not be used by any
/// layer.
const LAYERS: [&[&str]; 7] = [
    &["error", "id", "failpoint", "testdata", "select"],
    &["os", "hash"],
    &["format"],
    &["store"],
    &["tracking", "read"],
    &["write"],
    &["retention"],
];

type Module = Vec<String>;

fn rank(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a source file (`store/object/reader.rs` is `store::object::reader`).
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The longest prefix of `path` that is a module.
fn resolve(modules: &BTreeSet<Module>, path: &[String]) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
}

/// Every `crate::a::b` path in `code`, with `{x, y::z}` groups expanded.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let end = rest
            .find(|c: char| {
                !(c.is_alphanumeric() || c == '_' || c == ':' || c == '{' || c == '}' || c == ',' || c == ' ')
            })
            .unwrap_or(rest.len());
        let text = &rest[..end];
        let (head, group) = match text.find('{') {
            Some(b) => (&text[..b], text[b + 1..].split('}').next().unwrap_or("")),
            None => (text.split([' ', ',', '}']).next().unwrap_or(""), ""),
        };
        let head: Vec<String> = head.split("::").filter(|s| !s.is_empty()).map(String::from).collect();
        if group.is_empty() {
            out.push(head);
        } else {
            for item in group.split(',') {
                let item = item.split(" as ").next().unwrap_or("").trim();
                let mut p = head.clone();
                p.extend(item.split("::").filter(|s| !s.is_empty()).map(String::from));
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn modules_use_only_their_own_layer_or_below_and_no_file_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<Module> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        let text = fs::read_to_string(file).unwrap();
        // Unit tests may use what they test from anywhere.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        let deps = edges.entry(module.clone()).or_default();
        for path in crate_paths(code) {
            if let Some(target) = resolve(&modules, &path)
                && target != module
                && !target.is_empty()
            {
                deps.insert(target);
            }
        }
    }
    let mut wrong = Vec::new();
    for (from, deps) in &edges {
        let Some(top) = from.first() else { continue };
        let from_rank = rank(top).unwrap_or_else(|| panic!("module {top} is in no layer of this test"));
        for to in deps {
            let to_rank = rank(&to[0]).unwrap_or(usize::MAX);
            if to_rank > from_rank || (to_rank == from_rank && to[0] != *top && from_rank > 0) {
                wrong.push(format!("{} uses {}", from.join("::"), to.join("::")));
            }
        }
    }
    assert!(wrong.is_empty(), "uses across layers:\n{}", wrong.join("\n"));

    // No cycle between files: a depth-first search finds no back edge.
    fn visit(
        m: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        state: &mut BTreeMap<Module, u8>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        state.insert(m.clone(), 1);
        stack.push(m.clone());
        for next in edges.get(m).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                0 => {
                    if let Some(c) = visit(next, edges, state, stack) {
                        return Some(c);
                    }
                }
                1 => {
                    let start = stack.iter().position(|s| s == next).unwrap_or(0);
                    return Some(stack[start..].to_vec());
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in edges.keys() {
        if state.get(m).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(m, &edges, &mut state, &mut Vec::new())
        {
            let names: Vec<String> = cycle.iter().map(|c| c.join("::")).collect();
            panic!("files use each other: {}", names.join(" -> "));
        }
    }
}
