//! Rows as both sides produce them: the encoded row, its 128-bit hash and order-preserving
//! key; order-independent digests; key ranges; and what a scan collects from each row.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use crate::canon::{self, Ctx, Domain, Side, Val, T_INT, T_TEXT};

/// How many bytes of each cell a collected row keeps for showing in a report.
const SHOWN_PAYLOAD: usize = 256;

/// One row, encoded: the concatenated canonical cells (key columns first), where each cell
/// ends, the row hash and the key bytes.
#[derive(Debug, Default)]
pub(crate) struct RowBuf {
    pub bytes: Vec<u8>,
    pub ends: Vec<usize>,
    pub key: Vec<u8>,
    pub hash: u128,
    /// Every key cell is an INTEGER or a UTF-8 TEXT without NUL, so SQL range predicates
    /// select exactly the rows a canonical key range holds.
    pub key_safe: bool,
    n_key: usize,
}

impl RowBuf {
    /// `n_key` = 0 for a table compared as a multiset (the key is then the row hash).
    pub fn new(n_key: usize) -> Self {
        Self {
            n_key,
            key_safe: true,
            ..Self::default()
        }
    }

    pub fn start(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.key.clear();
    }

    pub fn push(&mut self, domain: Domain, v: &Val<'_>, ctx: Ctx, side: Side) {
        let start = self.bytes.len();
        canon::encode(domain, v, ctx, side, &mut self.bytes);
        self.ends.push(self.bytes.len());
        if self.ends.len() <= self.n_key {
            let cell = &self.bytes[start..];
            let safe = match cell[0] {
                T_INT => domain == Domain::Integer,
                T_TEXT => {
                    domain == Domain::Text
                        && !cell[5..].contains(&0)
                        && std::str::from_utf8(&cell[5..]).is_ok()
                }
                _ => false,
            };
            self.key_safe &= safe;
        }
    }

    pub fn finish(&mut self) {
        self.hash = xxh3_128(&self.bytes);
        if self.n_key == 0 {
            self.key.extend_from_slice(&self.hash.to_be_bytes());
        } else {
            for i in 0..self.n_key.min(self.ends.len()) {
                let cell = &self.bytes[self.cell_start(i)..self.ends[i]];
                canon::push_key_part(cell, &mut self.key);
            }
        }
    }

    fn cell_start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.ends[i - 1]
        }
    }

    pub fn cell(&self, i: usize) -> &[u8] {
        &self.bytes[self.cell_start(i)..self.ends[i]]
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }
}

/// An order-independent, duplicate-aware digest of a set of rows: how many, the sum of
/// their hashes modulo 2^128 and their xor. Adding a row twice changes the sum though it
/// cancels in the xor; the order of rows changes neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Acc {
    pub count: u64,
    pub sum: u128,
    pub xor: u128,
}

impl Acc {
    pub fn add(&mut self, hash: u128) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(hash);
        self.xor ^= hash;
    }

    pub fn merge(&mut self, other: &Acc) {
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
        self.xor ^= other.xor;
    }

    pub fn public(&self) -> TableDigest {
        TableDigest {
            count: self.count,
            sum: format!("{:032x}", self.sum),
            xor: format!("{:032x}", self.xor),
        }
    }
}

/// A table's digest as reports store it: row count, sum of row hashes mod 2^128 and their
/// xor, both as 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDigest {
    pub count: u64,
    pub sum: String,
    pub xor: String,
}

/// A half-open range of key bytes `[lo, hi)`; `None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Range {
    pub lo: Option<Vec<u8>>,
    pub hi: Option<Vec<u8>>,
}

impl Range {
    pub fn all() -> Self {
        Range { lo: None, hi: None }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.lo.as_deref().is_none_or(|lo| lo <= key)
            && self.hi.as_deref().is_none_or(|hi| key < hi)
    }

    /// Splits this range at sorted `cuts` strictly inside it.
    pub fn split(&self, cuts: &[Vec<u8>]) -> Vec<Range> {
        let mut out = Vec::with_capacity(cuts.len() + 1);
        let mut lo = self.lo.clone();
        for cut in cuts {
            if self.contains(cut) && lo.as_deref().is_none_or(|l| l < cut.as_slice()) {
                out.push(Range {
                    lo: lo.take(),
                    hi: Some(cut.clone()),
                });
                lo = Some(cut.clone());
            }
        }
        out.push(Range {
            lo,
            hi: self.hi.clone(),
        });
        out
    }
}

/// Sorted, disjoint ranges and a fast lookup of the one holding a key.
#[derive(Debug, Clone)]
pub(crate) struct RangeSet {
    pub ranges: Vec<Range>,
}

impl RangeSet {
    pub fn new(mut ranges: Vec<Range>) -> Self {
        ranges.sort_by(|a, b| match (&a.lo, &b.lo) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, _) => std::cmp::Ordering::Less,
            (_, None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.cmp(y),
        });
        RangeSet { ranges }
    }

    /// Whether the ranges cover every key (so a scan needs no filter).
    pub fn covers_all(&self) -> bool {
        self.spans()
            .iter()
            .any(|r| r.lo.is_none() && r.hi.is_none())
    }

    pub fn locate(&self, key: &[u8]) -> Option<usize> {
        let n = self
            .ranges
            .partition_point(|r| r.lo.as_deref().is_none_or(|lo| lo <= key));
        let i = n.checked_sub(1)?;
        self.ranges[i].contains(key).then_some(i)
    }

    /// Adjacent ranges merged, for short SQL predicates.
    pub fn spans(&self) -> Vec<Range> {
        let mut out: Vec<Range> = Vec::new();
        for r in &self.ranges {
            match out.last_mut() {
                Some(last) if last.hi.is_some() && last.hi == r.lo => last.hi = r.hi.clone(),
                _ => out.push(r.clone()),
            }
        }
        out
    }
}

/// Boundaries that split the 128-bit hash space into `n` equal ranges (for tables compared
/// as multisets, whose key is the row hash).
pub(crate) fn hash_cuts(lo: Option<&[u8]>, hi: Option<&[u8]>, n: usize) -> Vec<Vec<u8>> {
    let as_u128 = |b: &[u8]| u128::from_be_bytes(b.try_into().unwrap_or([0; 16]));
    let lo = lo.map_or(0, as_u128);
    let hi = hi.map_or(u128::MAX, as_u128);
    let width = (hi - lo.min(hi)) / n.max(1) as u128;
    if width == 0 {
        return Vec::new();
    }
    (1..n)
        .map(|k| (lo + width * k as u128).to_be_bytes().to_vec())
        .collect()
}

/// A row kept in memory for a row-by-row comparison: key, hash, and per cell a hash and
/// the first bytes for showing (all cells' bytes in one buffer).
#[derive(Debug, Clone)]
pub(crate) struct LeafRow {
    pub key: Vec<u8>,
    pub hash: u128,
    cell_hashes: Vec<u64>,
    briefs: Vec<u8>,
    brief_ends: Vec<u32>,
}

impl LeafRow {
    fn from_row(r: &RowBuf) -> Self {
        let n = r.len();
        let mut row = LeafRow {
            key: r.key.clone(),
            hash: r.hash,
            cell_hashes: Vec::with_capacity(n),
            briefs: Vec::new(),
            brief_ends: Vec::with_capacity(n),
        };
        for i in 0..n {
            let cell = r.cell(i);
            row.cell_hashes.push(xxh3_64(cell));
            row.briefs
                .extend_from_slice(&cell[..cell.len().min(5 + SHOWN_PAYLOAD)]);
            row.brief_ends.push(row.briefs.len() as u32);
        }
        row
    }

    pub fn len(&self) -> usize {
        self.cell_hashes.len()
    }

    pub fn cell_hash(&self, i: usize) -> u64 {
        self.cell_hashes[i]
    }

    /// The first bytes of cell `i`, for [`canon::show`].
    pub fn brief(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.brief_ends[i - 1] as usize
        };
        &self.briefs[start..self.brief_ends[i] as usize]
    }
}

/// What a scan does with each row.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    /// A digest per range.
    Digest,
    /// The rows themselves.
    Collect,
    /// Every `step`-th key.
    Sample { step: u64 },
}

/// Accumulates one side's rows of one scan.
#[derive(Debug)]
pub(crate) struct Collector {
    mode: Mode,
    set: Arc<RangeSet>,
    all: bool,
    pub digests: Vec<Acc>,
    pub rows: Vec<LeafRow>,
    pub keys: Vec<Vec<u8>>,
    /// Rows whose key is not safe for SQL range predicates.
    pub unsafe_keys: u64,
    /// Rows read, and of those, rows in the ranges.
    pub read: u64,
    pub seen: u64,
}

impl Collector {
    pub fn new(mode: Mode, set: Arc<RangeSet>) -> Self {
        let all = set.ranges.len() == 1 && set.covers_all();
        Collector {
            mode,
            digests: vec![Acc::default(); set.ranges.len()],
            set,
            all,
            rows: Vec::new(),
            keys: Vec::new(),
            unsafe_keys: 0,
            read: 0,
            seen: 0,
        }
    }

    pub fn row(&mut self, r: &RowBuf) {
        self.read += 1;
        if !r.key_safe {
            self.unsafe_keys += 1;
        }
        let idx = if self.all {
            0
        } else {
            match self.set.locate(&r.key) {
                Some(i) => i,
                None => return,
            }
        };
        self.seen += 1;
        match self.mode {
            Mode::Digest => self.digests[idx].add(r.hash),
            Mode::Collect => self.rows.push(LeafRow::from_row(r)),
            Mode::Sample { step } => {
                if (self.seen - 1).is_multiple_of(step.max(1)) {
                    self.keys.push(r.key.clone());
                }
            }
        }
    }
}

/// `want - 1` cut points spread evenly through `keys` (sorted and de-duplicated here).
pub(crate) fn quantile_cuts(mut keys: Vec<Vec<u8>>, want: usize) -> Vec<Vec<u8>> {
    keys.sort_unstable();
    keys.dedup();
    if want <= 1 || keys.len() <= 1 {
        return Vec::new();
    }
    let n = keys.len();
    let mut cuts: Vec<Vec<u8>> = (1..want)
        .map(|k| keys[(k * n / want).min(n - 1)].clone())
        .collect();
    cuts.dedup();
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_order_independent_and_counts_duplicates() {
        let (a, b) = (0x1234_u128, u128::MAX - 7);
        let mut x = Acc::default();
        x.add(a);
        x.add(b);
        let mut y = Acc::default();
        y.add(b);
        y.add(a);
        assert_eq!(x, y);
        let mut dup = x;
        dup.add(a);
        dup.add(a);
        assert_ne!(dup.sum, x.sum, "a duplicated row must change the sum");
        assert_eq!(dup.xor, x.xor, "xor alone would miss it");
    }

    #[test]
    fn ranges_locate_and_split() {
        let set = RangeSet::new(Range::all().split(&[vec![5], vec![9]]));
        assert_eq!(set.ranges.len(), 3);
        assert_eq!(set.locate(&[1]), Some(0));
        assert_eq!(set.locate(&[5]), Some(1));
        assert_eq!(set.locate(&[9, 0]), Some(2));
        assert!(set.covers_all());
        let part = RangeSet::new(vec![set.ranges[0].clone(), set.ranges[2].clone()]);
        assert_eq!(part.locate(&[6]), None);
        assert_eq!(part.spans().len(), 2);
        assert_eq!(set.spans(), vec![Range::all()]);
    }

    #[test]
    fn hash_space_splits_evenly() {
        let cuts = hash_cuts(None, None, 4);
        assert_eq!(cuts.len(), 3);
        assert_eq!(cuts[1][0], 0x7f);
    }
}
