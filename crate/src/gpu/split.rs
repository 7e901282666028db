//! Split tensors: an f32 matrix (rows, cols) stored as consecutive row ranges ("parts"), each in
//! a buffer of its own, so that no part is larger than the device's storage binding or buffer
//! limit. The token embedding and the output head are split this way by vocabulary range.

use super::tensor::VIEW_ALIGN;
use super::{DType, Gpu, Tensor};
use crate::error::{shape_err, Error, Result};

/// Part and block boundaries fall on multiples of this many rows, so that a view starting at any
/// of them is aligned whatever the column count (64 rows of f32 are a multiple of 256 bytes), and
/// so is a view of a single row of logits starting at a vocabulary part.
pub const ROW_ALIGN: usize = (VIEW_ALIGN / 4) as usize;

/// A row-major (rows, cols) f32 matrix in parts of `part_rows` rows (the last may be shorter).
/// Cloning shares the buffers.
#[derive(Clone, Debug)]
pub struct SplitTensor {
    parts: Vec<Tensor>,
    rows: usize,
    cols: usize,
    part_rows: usize,
}

impl SplitTensor {
    /// A zero-filled (rows, cols) tensor in as few parts as the device's limits allow.
    pub fn zeros(gpu: &Gpu, label: &str, rows: usize, cols: usize) -> Result<SplitTensor> {
        let row_bytes = (cols.max(1) as u64) * DType::F32.size();
        let fit = (gpu.info.max_tensor_bytes() / row_bytes) as usize;
        let part_rows = if rows <= fit { rows } else { fit / ROW_ALIGN * ROW_ALIGN };
        if part_rows == 0 && rows > 0 {
            return Err(Error::Gpu(format!(
                "tensor {label} ({rows}, {cols}): {ROW_ALIGN} rows of {row_bytes} bytes exceed the device's \
                 limit of {} bytes per buffer",
                gpu.info.max_tensor_bytes()
            )));
        }
        Self::zeros_in_parts(gpu, label, rows, cols, part_rows)
    }

    /// A zero-filled (rows, cols) tensor in parts of `part_rows` rows, a multiple of
    /// [`ROW_ALIGN`] unless it holds every row.
    pub fn zeros_in_parts(gpu: &Gpu, label: &str, rows: usize, cols: usize, part_rows: usize) -> Result<SplitTensor> {
        let op = "split tensor";
        if part_rows == 0 || (part_rows < rows && !part_rows.is_multiple_of(ROW_ALIGN)) {
            return Err(shape_err(op, format!("{label}: parts of {part_rows} rows of {rows}")));
        }
        let parts = (0..rows.max(1))
            .step_by(part_rows)
            .enumerate()
            .map(|(i, start)| {
                let name = format!("{label}[{i}]");
                Tensor::zeros(gpu, &name, &[part_rows.min(rows - start), cols], DType::F32)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SplitTensor { parts, rows, cols, part_rows })
    }

    /// (rows, cols).
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    pub fn numel(&self) -> usize {
        self.rows * self.cols
    }

    pub fn byte_size(&self) -> u64 {
        self.numel() as u64 * DType::F32.size()
    }

    /// The parts in row order, each with its first row.
    pub fn parts(&self) -> impl Iterator<Item = (usize, &Tensor)> {
        self.parts.iter().enumerate().map(|(i, t)| (i * self.part_rows, t))
    }

    pub fn num_parts(&self) -> usize {
        self.parts.len()
    }

    /// Views of consecutive row ranges of at most `max_rows` rows (rounded down to a multiple of
    /// [`ROW_ALIGN`] when a part is longer), none across parts, each with its first row.
    pub fn blocks(&self, max_rows: usize) -> Result<Vec<(usize, Tensor)>> {
        let mut out = Vec::new();
        for (first, part) in self.parts() {
            let rows = part.shape()[0];
            let step = if rows <= max_rows { rows } else { max_rows / ROW_ALIGN * ROW_ALIGN };
            if step == 0 {
                return Err(shape_err("split tensor blocks", format!("blocks of {max_rows} rows of {rows}")));
            }
            for start in (0..rows).step_by(step) {
                let len = step.min(rows - start);
                out.push((first + start, part.view(start * self.cols, &[len, self.cols])?));
            }
        }
        Ok(out)
    }

    /// Writes `data` into elements `start..start + data.len()` (row-major over the whole
    /// tensor), across parts as needed.
    pub fn write_f32_at(&self, gpu: &Gpu, start: usize, data: &[f32]) -> Result<()> {
        if start + data.len() > self.numel() {
            return Err(shape_err("write", format!("{} f32 at element {start} into {:?}", data.len(), self.shape())));
        }
        let per_part = self.part_rows * self.cols;
        let (mut at, mut rest) = (start, data);
        while !rest.is_empty() {
            let (part, offset) = (at / per_part, at % per_part);
            let len = rest.len().min(per_part - offset);
            self.parts[part].write_f32_at(gpu, offset, &rest[..len])?;
            (at, rest) = (at + len, &rest[len..]);
        }
        Ok(())
    }

    /// Writes the whole tensor.
    pub fn write_f32(&self, gpu: &Gpu, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() {
            return Err(shape_err("write", format!("{} f32 into {:?}", data.len(), self.shape())));
        }
        self.write_f32_at(gpu, 0, data)
    }

    /// Reads the whole tensor back, parts in order (for tests and export).
    pub async fn read_f32(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.numel());
        for part in &self.parts {
            out.extend(part.read_f32(gpu).await?);
        }
        Ok(out)
    }
}
