//! Repacking: a data object the merged full uses only partly (more than `max_unused` of its
//! logical bytes used by no extent of the map) has its used bytes copied, in file order, into
//! one new data object, so that the old one can be freed. Objects used wholly or nearly so are
//! kept as they are: a merge then copies nothing, and store size and merge I/O stay bounded
//! together (restic's `--max-unused` for packs).

use std::collections::{BTreeMap, HashMap};

use crate::error::Result;
use crate::format::extent::ExtentMap;
use crate::format::policy::Percent;
use crate::id::ObjectId;
use crate::store::Store;
use crate::store::object::{Access, DataObjectWriter, FinishedObject};
use crate::write::limits::COMPRESSION_LEVEL;

/// The result of a repack: the new object and the map that uses it.
pub(crate) struct Repacked {
    /// The new data object, in `tmp/` (`None` in a dry run: the map then names a placeholder).
    pub object: Option<FinishedObject>,
    /// The map with the repacked objects' extents pointing into it.
    pub map: ExtentMap,
    /// Bytes copied (read from the old objects and written to the new one).
    pub copied: u64,
}

/// Bytes of `[start, end)` ranges after merging overlaps.
fn covered(mut ranges: Vec<(u64, u64)>) -> u64 {
    ranges.sort_unstable();
    let mut total = 0;
    let mut cur: Option<(u64, u64)> = None;
    for (s, e) in ranges {
        match &mut cur {
            Some((_, ce)) if s <= *ce => *ce = (*ce).max(e),
            _ => {
                if let Some((cs, ce)) = cur {
                    total += ce - cs;
                }
                cur = Some((s, e));
            }
        }
    }
    total + cur.map_or(0, |(s, e)| e - s)
}

/// Repacks the objects of `map` (other than `keep`, which others use wholly) whose unused share
/// is over `max_unused`; `None` when none is. `dry` plans the repack without copying.
pub(crate) fn repack(
    store: &Store,
    map: &ExtentMap,
    keep: &[ObjectId],
    max_unused: Percent,
    dry: bool,
) -> Result<Option<Repacked>> {
    let mut used: HashMap<ObjectId, Vec<(u64, u64)>> = HashMap::new();
    for p in map.pieces(0, map.size()) {
        if let Some((o, off)) = p.source {
            used.entry(o).or_default().push((off, off + p.len));
        }
    }
    let mut replaced = Vec::new();
    for (o, ranges) in used {
        if keep.contains(&o) {
            continue;
        }
        let len = store.data_object(&o)?.logical_len();
        let live = covered(ranges);
        let unused = len.saturating_sub(live);
        if u128::from(unused) * 10_000 > u128::from(max_unused.0) * u128::from(len) {
            replaced.push(o);
        }
    }
    if replaced.is_empty() {
        return Ok(None);
    }
    replaced.sort();
    let mut writer = if dry {
        None
    } else {
        Some(DataObjectWriter::create(&store.tmp_dir(), COMPRESSION_LEVEL)?)
    };
    let result = (|| {
        // Each used range once, at its place in the new object; pieces in file order.
        let mut placed: BTreeMap<(ObjectId, u64, u64), u64> = BTreeMap::new();
        let mut pieces = Vec::new();
        let mut at = 0u64;
        let mut copied = 0u64;
        let mut last = None;
        for p in map.pieces(0, map.size()) {
            match p.source {
                Some((o, off)) if replaced.contains(&o) => {
                    let key = (o, off, p.len);
                    let new_off = match placed.get(&key) {
                        Some(n) => *n,
                        None => {
                            if let Some(w) = writer.as_mut() {
                                copy_range(store, &o, off, p.len, w, &mut last)?;
                            }
                            placed.insert(key, at);
                            at += p.len;
                            copied += p.len;
                            at - p.len
                        }
                    };
                    pieces.push((p.len, Some((None, new_off))));
                }
                Some((o, off)) => pieces.push((p.len, Some((Some(o), off)))),
                None => pieces.push((p.len, None)),
            }
        }
        Ok::<_, crate::error::Error>((pieces, copied))
    })();
    let (pieces, copied) = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(w) = writer {
                w.abandon();
            }
            return Err(e);
        }
    };
    let object = writer.map(DataObjectWriter::finish).transpose()?;
    let new_id = object.as_ref().map_or(ObjectId([0; 32]), |o| o.id);
    let map = ExtentMap::from_pieces(
        pieces
            .into_iter()
            .map(|(len, src)| (len, src.map(|(o, off)| (o.unwrap_or(new_id), off)))),
    );
    Ok(Some(Repacked { object, map, copied }))
}

/// The frame decoded last: (object, frame number, bytes).
type LastFrame = Option<(ObjectId, u64, Vec<u8>)>;

/// Appends `len` bytes of object `id` from `offset` to `out`, frame by frame. Frames are read
/// past the shared cache (a repack reads each once; caching them would only grow memory),
/// keeping the last one for the next range, which often continues in it.
fn copy_range(
    store: &Store,
    id: &ObjectId,
    offset: u64,
    len: u64,
    out: &mut DataObjectWriter,
    last: &mut LastFrame,
) -> Result<()> {
    let obj = store.data_object(id)?;
    let fs = u64::from(obj.frame_size());
    let end = offset + len;
    let mut pos = offset;
    while pos < end {
        let frame = pos / fs;
        if !matches!(last, Some((o, f, _)) if o == id && *f == frame) {
            *last = Some((*id, frame, obj.read_frame(frame as usize, Access::Sequential)?));
        }
        let Some((_, _, data)) = last.as_ref() else {
            continue;
        };
        let start = (pos - frame * fs) as usize;
        let stop = ((end - frame * fs) as usize).min(data.len());
        let Some(bytes) = data.get(start..stop).filter(|b| !b.is_empty()) else {
            return Err(crate::error::Error::corrupt(
                obj.describe(),
                format!("ends before byte {end} that a version uses"),
            ));
        };
        out.write(bytes)?;
        pos += bytes.len() as u64;
    }
    Ok(())
}
