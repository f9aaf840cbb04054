//! Lists stored as runs over a base list: a new version's signature or hash tree keeps most of its
//! base's items, so it is stored as "items `start..start+count` of the base" runs plus the items
//! that are new. Resolving follows base links down to a complete list.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use crate::error::{Error, Result};
use crate::format::codec::{Decoder, Encoder};

/// A run of a list stored relative to a base list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run<T> {
    /// `count` consecutive items of the base, starting at item `start`.
    Base {
        /// First base item.
        start: u32,
        /// Number of items.
        count: u32,
    },
    /// Items that are new in this list.
    New(Vec<T>),
}

/// Builds a run list item by item, merging neighbours.
#[derive(Debug, Clone)]
pub struct RunBuilder<T> {
    runs: Vec<Run<T>>,
    count: u32,
}

impl<T> Default for RunBuilder<T> {
    fn default() -> Self {
        RunBuilder {
            runs: Vec::new(),
            count: 0,
        }
    }
}

impl<T> RunBuilder<T> {
    /// Appends base item `j`.
    pub fn push_base(&mut self, j: u32) {
        self.push_base_run(j, 1);
    }

    /// Appends base items `j..j + n`.
    pub fn push_base_run(&mut self, j: u32, n: u32) {
        if n == 0 {
            return;
        }
        self.count += n;
        if let Some(Run::Base { start, count }) = self.runs.last_mut()
            && *start + *count == j
        {
            *count += n;
            return;
        }
        self.runs.push(Run::Base { start: j, count: n });
    }

    /// Appends new items.
    pub fn push_new(&mut self, items: impl IntoIterator<Item = T>) {
        if !matches!(self.runs.last(), Some(Run::New(_))) {
            self.runs.push(Run::New(Vec::new()));
        }
        if let Some(Run::New(v)) = self.runs.last_mut() {
            let before = v.len();
            v.extend(items);
            self.count += (v.len() - before) as u32;
            if v.is_empty() {
                self.runs.pop();
            }
        }
    }

    /// Number of items so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// The runs.
    pub fn finish(self) -> Vec<Run<T>> {
        self.runs
    }
}

/// Encodes runs: a count, then per run `varint(count << 1 | is_new)` followed by the base start
/// (base runs) or the items (new runs, each written by `item`).
pub fn encode_runs<T>(runs: &[Run<T>], e: &mut Encoder, mut item: impl FnMut(&T, &mut Encoder)) {
    e.varint(runs.len() as u64);
    for run in runs {
        match run {
            Run::Base { start, count } => {
                e.varint(u64::from(*count) << 1);
                e.varint(u64::from(*start));
            }
            Run::New(items) => {
                e.varint(((items.len() as u64) << 1) | 1);
                for i in items {
                    item(i, e);
                }
            }
        }
    }
}

/// Decodes runs written by [`encode_runs`]. Base runs are refused when `has_base` is false; the
/// total may not exceed `max_items`; `min_item_len` bounds allocation by the bytes left.
pub fn decode_runs<'a, T>(
    d: &mut Decoder<'a>,
    has_base: bool,
    max_items: u64,
    min_item_len: usize,
    mut item: impl FnMut(&mut Decoder<'a>) -> Result<T>,
) -> Result<(Vec<Run<T>>, u64)> {
    let n_runs = d.count(1)?;
    let mut runs = Vec::with_capacity(n_runs);
    let mut total: u64 = 0;
    for _ in 0..n_runs {
        let tag = d.varint()?;
        let count = u32::try_from(tag >> 1).map_err(|_| d.error("run too long"))?;
        total += u64::from(count);
        if total > max_items {
            return Err(d.error("runs hold more items than the header says"));
        }
        if tag & 1 == 0 {
            if !has_base {
                return Err(d.error("base run in a self-contained list"));
            }
            let start = d.varint_u32()?;
            runs.push(Run::Base { start, count });
        } else {
            let n = count as usize;
            if n.saturating_mul(min_item_len.max(1)) > d.remaining() {
                return Err(d.error("run longer than the data left"));
            }
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(item(d)?);
            }
            runs.push(Run::New(items));
        }
    }
    Ok((runs, total))
}

/// Resolves runs into a complete list given the base list (required iff there are base runs).
pub fn resolve_runs<T: Clone>(runs: Vec<Run<T>>, base: Option<&[T]>, what: &str) -> Result<Vec<T>> {
    let mut out: Vec<T> = Vec::new();
    for run in runs {
        match run {
            Run::New(b) if out.is_empty() => out = b,
            Run::New(mut b) => out.append(&mut b),
            Run::Base { start, count } => {
                let base = base.ok_or_else(|| Error::corrupt(what, "base list not given"))?;
                let range = base
                    .get(start as usize..start as usize + count as usize)
                    .ok_or_else(|| Error::corrupt(what, "run points past the end of its base"))?;
                out.extend_from_slice(range);
            }
        }
    }
    Ok(out)
}

/// A piece of a list being resolved through a chain: items of a `New` run of some level, or a
/// range of the level below the ones composed so far.
#[derive(Debug, Clone, Copy)]
enum Piece {
    Items {
        level: usize,
        run: usize,
        from: usize,
        count: usize,
    },
    Below {
        start: u64,
        count: u64,
    },
}

/// Resolves a chain of run lists at once: `levels[0]` is the list wanted, the `Base` runs of each
/// level refer to the next level, and those of the last level to `bottom` (required iff it has
/// base runs). Gives what resolving level by level from the bottom up gives, but composes the
/// runs first and copies each item once, so the cost does not grow with the chain's length.
pub fn resolve_chain<T: Clone>(levels: &[Vec<Run<T>>], bottom: Option<&[T]>, what: &str) -> Result<Vec<T>> {
    let past_end = || Error::corrupt(what, "run points past the end of its base");
    let Some(top) = levels.first() else {
        return Ok(Vec::new());
    };
    let mut pieces: Vec<Piece> = top
        .iter()
        .enumerate()
        .map(|(run, r)| match r {
            Run::New(items) => Piece::Items {
                level: 0,
                run,
                from: 0,
                count: items.len(),
            },
            Run::Base { start, count } => Piece::Below {
                start: u64::from(*start),
                count: u64::from(*count),
            },
        })
        .collect();
    for (level, runs) in levels.iter().enumerate().skip(1) {
        // starts[i] = index of run i's first item in this level's list.
        let mut starts = Vec::with_capacity(runs.len() + 1);
        let mut total = 0u64;
        starts.push(0);
        for r in runs {
            total += match r {
                Run::New(items) => items.len() as u64,
                Run::Base { count, .. } => u64::from(*count),
            };
            starts.push(total);
        }
        let mut next = Vec::with_capacity(pieces.len());
        for p in pieces {
            let Piece::Below { start, count } = p else {
                next.push(p);
                continue;
            };
            let end = start + count;
            if end > total {
                return Err(past_end());
            }
            let mut pos = start;
            let mut i = starts.partition_point(|&s| s <= pos).saturating_sub(1);
            while pos < end {
                let (Some(&rs), Some(&re), Some(run)) = (starts.get(i), starts.get(i + 1), runs.get(i)) else {
                    return Err(past_end());
                };
                let upto = end.min(re);
                if upto > pos {
                    let (off, n) = (pos - rs, upto - pos);
                    next.push(match run {
                        Run::New(_) => Piece::Items {
                            level,
                            run: i,
                            from: off as usize,
                            count: n as usize,
                        },
                        Run::Base { start: b, .. } => Piece::Below {
                            start: u64::from(*b) + off,
                            count: n,
                        },
                    });
                }
                pos = upto;
                i += 1;
            }
        }
        pieces = next;
    }
    let mut out = Vec::new();
    for p in pieces {
        let slice = match p {
            Piece::Items {
                level,
                run,
                from,
                count,
            } => match levels.get(level).and_then(|l| l.get(run)) {
                Some(Run::New(items)) => items.get(from..from + count),
                _ => None,
            },
            Piece::Below { start, count } => {
                let base = bottom.ok_or_else(|| Error::corrupt(what, "base list not given"))?;
                base.get(start as usize..(start + count) as usize)
            }
        };
        out.extend_from_slice(slice.ok_or_else(past_end)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn builder_merges_and_resolves() {
        let mut b = RunBuilder::default();
        b.push_base(3);
        b.push_base(4);
        b.push_new([7u8, 8]);
        b.push_new([9u8]);
        b.push_base_run(0, 2);
        assert_eq!(b.len(), 7);
        let runs = b.finish();
        assert_eq!(
            runs,
            vec![
                Run::Base { start: 3, count: 2 },
                Run::New(vec![7, 8, 9]),
                Run::Base { start: 0, count: 2 }
            ]
        );
        let base = [10u8, 11, 12, 13, 14];
        assert_eq!(
            resolve_runs(runs.clone(), Some(&base), "t").unwrap(),
            vec![13, 14, 7, 8, 9, 10, 11]
        );
        let mut e = Encoder::new();
        encode_runs(&runs, &mut e, |i, e| e.u8(*i));
        let bytes = e.into_bytes();
        let (back, total) = decode_runs(&mut Decoder::new(&bytes, "r"), true, 7, 1, |d| d.u8()).unwrap();
        assert_eq!(back, runs);
        assert_eq!(total, 7);
        assert!(decode_runs(&mut Decoder::new(&bytes, "r"), false, 7, 1, |d| d.u8()).is_err());
        assert!(resolve_runs(runs, Some(&base[..2]), "t").is_err());
    }

    /// Random runs over a base of `base_len` items (xorshift from `seed`).
    fn gen_runs(seed: u64, base_len: u32) -> Vec<Run<u32>> {
        let mut x = seed | 1;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m.max(1)
        };
        (0..next(8))
            .map(|_| {
                if base_len == 0 || next(2) == 0 {
                    Run::New((0..next(5)).map(|_| next(1000) as u32).collect())
                } else {
                    let start = next(u64::from(base_len)) as u32;
                    let count = next(u64::from(base_len - start) + 1) as u32;
                    Run::Base { start, count }
                }
            })
            .collect()
    }

    fn len_of(runs: &[Run<u32>]) -> u32 {
        runs.iter()
            .map(|r| match r {
                Run::New(v) => v.len() as u32,
                Run::Base { count, .. } => *count,
            })
            .sum()
    }

    proptest! {
        #[test]
        fn resolving_a_chain_at_once_equals_level_by_level(
            bottom in proptest::collection::vec(any::<u32>(), 0..20),
            seeds in proptest::collection::vec(any::<u64>(), 1..6),
        ) {
            // Build levels from the bottom up, each over the one below.
            let mut below_len = bottom.len() as u32;
            let mut levels_bottom_up = Vec::new();
            for seed in seeds {
                let runs = gen_runs(seed, below_len);
                below_len = len_of(&runs);
                levels_bottom_up.push(runs);
            }
            let mut expected: Vec<u32> = bottom.clone();
            for runs in &levels_bottom_up {
                expected = resolve_runs(runs.clone(), Some(&expected), "t").unwrap();
            }
            let top_down: Vec<Vec<Run<u32>>> = levels_bottom_up.into_iter().rev().collect();
            prop_assert_eq!(resolve_chain(&top_down, Some(&bottom), "t").unwrap(), expected);
        }

        #[test]
        fn decoding_garbage_never_panics(data: Vec<u8>) {
            let _ = decode_runs(&mut Decoder::new(&data, "g"), true, 1 << 20, 4, |d| d.u32());
        }
    }
}
