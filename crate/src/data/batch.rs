//! Examples to (B, T) token batches: optional packing of short examples into rows, batches of
//! rows grouped by length, a deterministic shuffle per epoch, right padding and shifted targets.
//!
//! A row is one example or, with packing, several whole examples laid end to end (best-fit
//! decreasing into rows of `seq_len` tokens; done once, so an epoch shuffles rows, not the
//! examples inside them). `positions` restart at 0 at each packed example, `segments` number the
//! examples of a row (the engine's attention never crosses them), and the first token of each
//! example is never a target, as transformers' `DataCollatorWithFlattening` does: a packed row
//! computes what its examples would compute alone.

use std::collections::BTreeMap;

pub use crate::rng::Rng;
use serde::{Deserialize, Serialize};

use super::encode::Example;

/// The target of a position whose next token is not supervised (prompt, padding, row end).
pub const IGNORE_INDEX: i32 = -100;

/// How batches are cut and ordered.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchOptions {
    /// B: rows a batch.
    pub batch_size: usize,
    /// The longest row, in tokens (examples are truncated to it before batching).
    pub seq_len: usize,
    /// Pack several short examples into one row (each keeps its positions and segment; see
    /// [`TokenBatch`]).
    pub packing: bool,
    /// Put rows of similar length together (within windows of 50·B rows) to cut padding.
    pub group_by_length: bool,
    /// Shuffle every epoch (deterministically from `seed` and the epoch number).
    pub shuffle: bool,
    pub seed: u64,
    /// Pad every batch to `seq_len` (one shape for the whole run); otherwise to its longest row
    /// rounded up to `pad_to_multiple_of` (at most `seq_len`).
    pub pad_to_seq_len: bool,
    pub pad_to_multiple_of: usize,
    /// Leave out the last batch when it has fewer than B rows; otherwise it is filled with
    /// empty rows (all padding, no targets), which keeps the shape and the loss.
    pub drop_last: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            batch_size: 4,
            seq_len: 1024,
            packing: false,
            group_by_length: true,
            shuffle: true,
            seed: 42,
            pad_to_seq_len: false,
            pad_to_multiple_of: 64,
            drop_last: false,
        }
    }
}

/// One batch, row-major.
///
/// `targets[b·T + t]` is `ids[b·T + t + 1]` when that token is supervised and belongs to the
/// same example, else [`IGNORE_INDEX`]. The batch loss is the mean of the token losses over the
/// `supervised` targets (as transformers computes it); with gradient accumulation, divide by the
/// sum of `supervised` over the accumulated batches instead.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TokenBatch {
    /// B
    pub batch_size: usize,
    /// T
    pub seq_len: usize,
    pub ids: Vec<u32>,     // (B, T)
    pub targets: Vec<i32>, // (B, T)
    /// Position of each token within its example, 0 for padding. (B, T)
    pub positions: Vec<u32>,
    /// Index of each token's example in its row; a row's padding is one more segment. (B, T)
    pub segments: Vec<u32>,
    /// Targets that are not [`IGNORE_INDEX`].
    pub supervised: usize,
    /// Real tokens, padding not counted.
    pub tokens: usize,
}

/// The engine's batch: the same `ids`, `targets`, `positions` and `segments` (B, T).
impl From<TokenBatch> for crate::model::Batch {
    fn from(b: TokenBatch) -> Self {
        Self {
            b: b.batch_size,
            t: b.seq_len,
            ids: b.ids,
            targets: b.targets,
            positions: b.positions,
            segments: b.segments,
        }
    }
}

/// Turns examples into batches, epoch after epoch.
#[derive(Clone, Debug)]
pub struct Batcher {
    examples: Vec<Example>,
    /// Each row: indices into `examples`, laid end to end.
    rows: Vec<Vec<usize>>,
    row_len: Vec<usize>,
    pub options: BatchOptions,
    pad_id: u32,
}

impl Batcher {
    /// `examples` must already fit `seq_len` (see [`super::truncate`]); longer ones are cut.
    /// `pad_id`: the tokenizer's pad token, else its EOS.
    pub fn new(mut examples: Vec<Example>, options: BatchOptions, pad_id: u32) -> Self {
        let mut options = options;
        options.batch_size = options.batch_size.max(1);
        options.seq_len = options.seq_len.max(2);
        options.pad_to_multiple_of = options.pad_to_multiple_of.max(1);
        for e in &mut examples {
            e.ids.truncate(options.seq_len);
            e.mask.truncate(options.seq_len);
        }
        let rows = if options.packing {
            pack(&examples, options.seq_len)
        } else {
            (0..examples.len()).map(|i| vec![i]).collect()
        };
        let row_len = rows.iter().map(|r| r.iter().map(|&i| examples[i].len()).sum()).collect();
        Self { examples, rows, row_len, options, pad_id }
    }

    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.rows.len(), self.options.batch_size);
        if self.options.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The rows of each batch of epoch `epoch`, in order.
    pub fn plan(&self, epoch: u64) -> Vec<Vec<usize>> {
        let o = &self.options;
        let mut rng = Rng::new(o.seed ^ epoch.wrapping_mul(0xA076_1D64_78BD_642F));
        let mut order: Vec<usize> = (0..self.rows.len()).collect();
        if o.shuffle {
            rng.shuffle(&mut order);
        }
        if o.group_by_length {
            for mega in order.chunks_mut(50 * o.batch_size) {
                mega.sort_by_key(|&r| std::cmp::Reverse(self.row_len[r]));
            }
        }
        let mut batches: Vec<Vec<usize>> = order.chunks(o.batch_size).map(<[usize]>::to_vec).collect();
        if o.drop_last && batches.last().is_some_and(|b| b.len() < o.batch_size) {
            batches.pop();
        }
        if o.shuffle && o.group_by_length {
            rng.shuffle(&mut batches);
        }
        batches
    }

    /// The batches of epoch `epoch`.
    pub fn epoch(&self, epoch: u64) -> impl Iterator<Item = TokenBatch> + '_ {
        self.plan(epoch).into_iter().map(|rows| self.batch(&rows))
    }

    /// T of a batch whose longest row has `longest` tokens.
    fn padded_len(&self, longest: usize) -> usize {
        let o = &self.options;
        if o.pad_to_seq_len {
            o.seq_len
        } else {
            longest
                .max(2)
                .div_ceil(o.pad_to_multiple_of)
                .saturating_mul(o.pad_to_multiple_of)
                .min(o.seq_len)
                .max(longest)
        }
    }

    /// The largest T of any batch: that of the batch with the longest row (0 without rows).
    pub fn max_seq_len(&self) -> usize {
        self.row_len.iter().max().map_or(0, |&l| self.padded_len(l))
    }

    /// The batch of these rows, padded to B rows.
    pub fn batch(&self, rows: &[usize]) -> TokenBatch {
        let o = &self.options;
        let b = o.batch_size.max(rows.len());
        let longest = rows.iter().filter_map(|&r| self.row_len.get(r)).copied().max().unwrap_or(0);
        let t = self.padded_len(longest);
        let mut out = TokenBatch {
            batch_size: b,
            seq_len: t,
            ids: vec![self.pad_id; b * t],
            targets: vec![IGNORE_INDEX; b * t],
            positions: vec![0; b * t],
            segments: vec![0; b * t],
            supervised: 0,
            tokens: 0,
        };
        for (slot, &r) in rows.iter().enumerate() {
            let Some(members) = self.rows.get(r) else {
                continue;
            };
            let base = slot * t;
            let mut at = 0;
            for (segment, &i) in members.iter().enumerate() {
                let e = &self.examples[i];
                for (k, &id) in e.ids.iter().enumerate().take(t - at) {
                    out.ids[base + at + k] = id;
                    out.positions[base + at + k] = k as u32;
                    out.segments[base + at + k] = segment as u32;
                    if k > 0 && e.mask.get(k).copied().unwrap_or(false) {
                        out.targets[base + at + k - 1] = id as i32;
                        out.supervised += 1;
                    }
                }
                at += e.len().min(t - at);
            }
            out.segments[base + at..base + t].fill(members.len() as u32);
            out.tokens += at;
        }
        out
    }
}

/// Best-fit decreasing: each example, longest first, goes into the fullest row it fits.
fn pack(examples: &[Example], seq_len: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(examples[i].len()), i));
    let mut rows: Vec<Vec<usize>> = Vec::new();
    // Free space → rows with that much space.
    let mut free: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in order {
        let len = examples[i].len().min(seq_len);
        let fit = free.range(len..).next().map(|(&space, _)| space);
        let slot = fit.and_then(|space| {
            let rs = free.get_mut(&space)?;
            let r = rs.pop();
            if rs.is_empty() {
                free.remove(&space);
            }
            r.map(|r| (space, r))
        });
        let (space, r) = match slot {
            Some(s) => s,
            None => {
                rows.push(Vec::new());
                (seq_len, rows.len() - 1)
            }
        };
        rows[r].push(i);
        let left = space - len;
        if left >= 2 {
            free.entry(left).or_default().push(r);
        }
    }
    rows
}
