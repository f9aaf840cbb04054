//! Choosing entries of a tree by gitignore-style patterns, as `git` reads a `.gitignore` at the
//! tree's root: `*.tmp` (a name at any depth), `/build` (anchored at the root), `**/cache/`
//! (directories only), `!keep.tmp` (re-included). The glob semantics are those of the `ignore`
//! crate (ripgrep's); the walk order is git's: a tree is decided top-down, so nothing under an
//! excluded directory is looked at, and a `!` pattern cannot bring a path back from under one.
//!
//! Paths are relative to the tree's root (a snapshot's root, or a backup source).

use std::path::Path;

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::{Error, Result};

/// How one entry fares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathVerdict {
    /// Excluded by the exclude rule of this index (its pattern is [`PathFilter::rule`]).
    Excluded(usize),
    /// Included: it matched an include pattern, is under a directory that did, or there are no
    /// include patterns.
    Included,
    /// Neither: with include patterns, a directory that did not match (look inside: it is kept
    /// if something under it is included) or a file that did not (left out).
    Undecided,
}

/// Exclude patterns, and optionally include patterns, compiled.
#[derive(Debug, Clone)]
pub struct PathFilter {
    excludes: Gitignore,
    /// Each exclude line as given, by rule index.
    exclude_lines: Vec<String>,
    includes: Option<Gitignore>,
}

impl Default for PathFilter {
    fn default() -> Self {
        PathFilter {
            excludes: Gitignore::empty(),
            exclude_lines: Vec::new(),
            includes: None,
        }
    }
}

impl PathFilter {
    /// A filter excluding what `excludes` match (in order: a later `!pattern` re-includes what an
    /// earlier one excluded) and, when `includes` is not empty, keeping only what they match
    /// and the directories leading to it. Blank lines and `#` comments are ignored.
    pub fn new(excludes: &[String], includes: &[String]) -> Result<PathFilter> {
        Ok(PathFilter {
            excludes: compile(excludes)?,
            exclude_lines: excludes.to_vec(),
            includes: if includes.is_empty() {
                None
            } else {
                Some(compile(includes)?)
            },
        })
    }

    /// True when it excludes and includes nothing: every entry is [`PathVerdict::Included`].
    pub fn is_empty(&self) -> bool {
        self.excludes.is_empty() && self.includes.is_none()
    }

    /// True when it has include patterns.
    pub fn has_includes(&self) -> bool {
        self.includes.is_some()
    }

    /// How many exclude lines it was given (rule indexes are below this).
    pub fn exclude_count(&self) -> usize {
        self.exclude_lines.len()
    }

    /// The exclude pattern of rule `index`, as given.
    pub fn rule(&self, index: usize) -> &str {
        self.exclude_lines.get(index).map_or("", String::as_str)
    }

    /// The verdict on the entry at `path` (relative to the root); `parent_included` says
    /// whether its directory was [`PathVerdict::Included`]. Call it top-down and do not descend
    /// into an excluded directory.
    pub fn verdict(&self, path: &Path, is_dir: bool, parent_included: bool) -> PathVerdict {
        if let Match::Ignore(glob) = self.excludes.matched(path, is_dir) {
            let line = glob.original();
            let index = self
                .exclude_lines
                .iter()
                .position(|l| l.trim() == line.trim())
                .unwrap_or(0);
            return PathVerdict::Excluded(index);
        }
        match &self.includes {
            None => PathVerdict::Included,
            Some(_) if parent_included => PathVerdict::Included,
            Some(inc) if inc.matched(path, is_dir).is_ignore() => PathVerdict::Included,
            Some(_) => PathVerdict::Undecided,
        }
    }
}

/// One gitignore matcher of `lines`, rooted at the tree's root.
fn compile(lines: &[String]) -> Result<Gitignore> {
    let mut b = GitignoreBuilder::new(".");
    for line in lines {
        b.add_line(None, line).map_err(|e| Error::InvalidPattern {
            pattern: line.clone(),
            reason: e.to_string(),
        })?;
    }
    b.build().map_err(|e| Error::InvalidPattern {
        pattern: lines.join(", "),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(ex: &[&str], inc: &[&str]) -> PathFilter {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        PathFilter::new(&s(ex), &s(inc)).expect("patterns")
    }

    fn excluded(f: &PathFilter, path: &str, is_dir: bool) -> bool {
        matches!(f.verdict(Path::new(path), is_dir, false), PathVerdict::Excluded(_))
    }

    #[test]
    fn excludes_read_as_a_root_gitignore() {
        let f = filter(&["*.tmp", "/build", "**/node_modules", "cache/", "!keep.tmp"], &[]);
        assert!(excluded(&f, "a.tmp", false));
        assert!(excluded(&f, "deep/down/a.tmp", false));
        assert!(!excluded(&f, "keep.tmp", false), "re-included by the later !pattern");
        assert!(excluded(&f, "build", true));
        assert!(!excluded(&f, "src/build", true), "/build is anchored at the root");
        assert!(excluded(&f, "web/node_modules", true));
        assert!(excluded(&f, "cache", true));
        assert!(!excluded(&f, "cache", false), "cache/ matches directories only");
        assert_eq!(f.verdict(Path::new("x.tmp"), false, false), PathVerdict::Excluded(0));
        assert_eq!(f.rule(1), "/build");
        assert_eq!(f.verdict(Path::new("src/main.rs"), false, false), PathVerdict::Included);
    }

    #[test]
    fn includes_keep_matches_what_is_under_them_and_leave_the_rest_undecided() {
        let f = filter(&["*.bak"], &["docs", "*.rs"]);
        assert_eq!(f.verdict(Path::new("docs"), true, false), PathVerdict::Included);
        assert_eq!(f.verdict(Path::new("docs/a.txt"), false, true), PathVerdict::Included);
        assert_eq!(
            f.verdict(Path::new("docs/a.bak"), false, true),
            PathVerdict::Excluded(0)
        );
        assert_eq!(f.verdict(Path::new("src"), true, false), PathVerdict::Undecided);
        assert_eq!(f.verdict(Path::new("src/main.rs"), false, false), PathVerdict::Included);
        assert_eq!(
            f.verdict(Path::new("src/notes.txt"), false, false),
            PathVerdict::Undecided
        );
    }

    #[test]
    fn comments_blank_lines_and_bad_patterns() {
        let f = filter(&["# a comment", "", "*.o"], &[]);
        assert!(excluded(&f, "x.o", false));
        assert!(!excluded(&f, "# a comment", false));
        assert!(PathFilter::default().is_empty());
        // An unclosed class is literal, as in git; a dangling escape is an error naming it.
        assert!(excluded(&filter(&["a["], &[]), "a[", false));
        let err = PathFilter::new(&["*.o".to_string(), "bad\\".to_string()], &[]).unwrap_err();
        assert!(err.to_string().contains("bad\\"), "{err}");
    }
}
