//! Sorted, merged sets of byte ranges (changed ranges of a file, ranges to read).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::ops::Range;

/// A set of non-overlapping, non-adjacent, sorted, non-empty ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range<u64>>,
}

impl RangeSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The set holding one range (empty if the range is).
    pub fn one(r: Range<u64>) -> Self {
        RangeSet::from_ranges(std::iter::once(r))
    }

    /// The set of the given ranges (any order, overlaps allowed, empty ones ignored).
    pub fn from_ranges(ranges: impl IntoIterator<Item = Range<u64>>) -> Self {
        let mut v: Vec<Range<u64>> = ranges.into_iter().filter(|r| r.start < r.end).collect();
        v.sort_by_key(|r| r.start);
        let mut out: Vec<Range<u64>> = Vec::with_capacity(v.len());
        for r in v {
            match out.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => out.push(r),
            }
        }
        RangeSet { ranges: out }
    }

    /// The ranges, sorted.
    pub fn ranges(&self) -> &[Range<u64>] {
        &self.ranges
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Total bytes covered.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    /// This set and `other` together.
    pub fn union(&self, other: &RangeSet) -> RangeSet {
        RangeSet::from_ranges(self.ranges.iter().chain(other.ranges.iter()).cloned())
    }

    /// This set clipped to `[0, end)`.
    pub fn clip(&self, end: u64) -> RangeSet {
        RangeSet::from_ranges(self.ranges.iter().map(|r| r.start.min(end)..r.end.min(end)))
    }

    /// True when some range intersects `[start, end)`.
    pub fn intersects(&self, start: u64, end: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.end <= start);
        self.ranges.get(i).is_some_and(|r| r.start < end)
    }

    /// Every range widened to multiples of `unit` (clipped to `[0, end)`).
    pub fn align(&self, unit: u64, end: u64) -> RangeSet {
        RangeSet::from_ranges(
            self.ranges
                .iter()
                .map(|r| (r.start / unit * unit)..r.end.div_ceil(unit).saturating_mul(unit).min(end)),
        )
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // lists of ranges with one range
mod tests {
    use super::*;

    #[test]
    fn merges_and_queries() {
        let s = RangeSet::from_ranges([10..20, 0..5, 15..30, 5..6, 40..40]);
        assert_eq!(s.ranges(), &[0..6, 10..30]);
        assert_eq!(s.len(), 26);
        assert!(s.intersects(5, 7));
        assert!(!s.intersects(6, 10));
        assert!(s.intersects(29, 100));
        assert!(!s.intersects(30, 100));
        assert_eq!(s.clip(12).ranges(), &[0..6, 10..12]);
        assert_eq!(s.align(8, 100).ranges(), &[0..32]);
        assert_eq!(RangeSet::from_ranges([3..5]).align(4, 6).ranges(), &[0..6]);
    }
}
