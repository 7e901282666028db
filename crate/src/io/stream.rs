//! The data-section half of the streaming readers: cuts a stream of chunks into whole tensors.

/// Position in a data section whose tensors lie at known, increasing, non-overlapping spans.
pub(super) struct TensorCursor {
    /// Absolute file offset of the next byte fed.
    pos: u64,
    /// Index of the next tensor to hand over.
    next: usize,
    /// The bytes gathered so far of tensor `next`, when it spans chunks.
    partial: Vec<u8>,
}

impl TensorCursor {
    /// A cursor whose next byte is at absolute file offset `pos`.
    pub fn new(pos: u64) -> Self {
        Self { pos, next: 0, partial: Vec::new() }
    }

    /// Index of the next tensor to hand over.
    pub fn next(&self) -> usize {
        self.next
    }

    /// Hands over every tensor of `tensors` that `chunk`, the bytes at the cursor, completes.
    /// `span` gives a tensor's absolute start and its byte length. Bytes between and after
    /// tensors (padding) are skipped. A tensor inside `chunk` is handed over without a copy.
    pub fn feed<T, E>(
        &mut self,
        tensors: &[T],
        span: impl Fn(&T) -> (u64, u64),
        mut chunk: &[u8],
        mut on_tensor: impl FnMut(&T, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        while let Some(info) = tensors.get(self.next) {
            let (start, len) = span(info);
            if self.pos < start {
                let skip = (start - self.pos).min(chunk.len() as u64);
                if skip == 0 {
                    break;
                }
                chunk = &chunk[skip as usize..];
                self.pos += skip;
                continue;
            }
            let missing = (len - self.partial.len() as u64) as usize;
            if self.partial.is_empty() && chunk.len() >= missing {
                on_tensor(info, &chunk[..missing])?;
                chunk = &chunk[missing..];
                self.pos += missing as u64;
            } else {
                let take = missing.min(chunk.len());
                if take == 0 {
                    break;
                }
                self.partial.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                self.pos += take as u64;
                if take < missing {
                    break;
                }
                on_tensor(info, &self.partial)?;
                self.partial.clear();
            }
            self.next += 1;
        }
        self.pos += chunk.len() as u64;
        Ok(())
    }
}
