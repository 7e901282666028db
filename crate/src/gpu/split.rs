//! Split tensors: a frozen matrix (rows, cols) stored as consecutive row ranges ("parts"), each
//! a [`Weight`] of its own (f32, or kept in a GGML format), so that no part is larger than the
//! device's storage binding or buffer limit. The token embedding and the output head are split
//! this way by vocabulary range, and a projection larger than those limits by output rows.

use super::tensor::VIEW_ALIGN;
use super::{DType, Gpu, QuantTensor, Tensor, Weight};
use crate::error::{shape_err, Error, Result};
use crate::io::GgmlType;

/// Part and block boundaries fall on multiples of this many rows, so that a view starting at any
/// of them is aligned whatever the column count (64 rows of f32 are a multiple of 256 bytes), and
/// so is a view of a single row of logits starting at a vocabulary part.
pub const ROW_ALIGN: usize = (VIEW_ALIGN / 4) as usize;

/// A row-major (rows, cols) matrix of type `ty` in parts of `part_rows` rows (the last may be
/// shorter), each an f32 tensor or a [`QuantTensor`]. Cloning shares the buffers.
#[derive(Clone, Debug)]
pub struct SplitTensor {
    parts: Vec<Weight>,
    rows: usize,
    cols: usize,
    part_rows: usize,
    ty: GgmlType,
}

impl SplitTensor {
    /// A zero-filled (rows, cols) f32 tensor in as few parts as the device's limits allow.
    pub fn zeros(gpu: &Gpu, label: &str, rows: usize, cols: usize) -> Result<SplitTensor> {
        Self::zeros_as(gpu, label, GgmlType::F32, rows, cols)
    }

    /// A zero-filled (rows, cols) tensor kept as `ty` (f32, or a type [`QuantTensor`] keeps) in
    /// as few parts as the device's limits allow.
    pub fn zeros_as(gpu: &Gpu, label: &str, ty: GgmlType, rows: usize, cols: usize) -> Result<SplitTensor> {
        let part_rows = Self::part_rows_for(label, ty, rows, cols, gpu.info.max_tensor_bytes())?;
        Self::zeros_in_parts_as(gpu, label, ty, rows, cols, part_rows)
    }

    /// The rows of each part of a (rows, cols) tensor kept as `ty` when no part may take more
    /// than `limit` bytes: all of them when the whole fits, else the most whole multiples of
    /// [`ROW_ALIGN`] that fit (what [`SplitTensor::zeros_as`] allocates; no GPU needed).
    pub fn part_rows_for(label: &str, ty: GgmlType, rows: usize, cols: usize, limit: u64) -> Result<usize> {
        let bytes = |rows: usize| Self::part_bytes(label, ty, rows, cols);
        let part_rows = if bytes(rows)? <= limit {
            rows
        } else {
            // Whole multiples of ROW_ALIGN rows: the most that fit, from an estimate per row.
            let per_row = bytes(ROW_ALIGN)?.div_ceil(ROW_ALIGN as u64).max(1);
            let mut fit = (limit / per_row) as usize / ROW_ALIGN * ROW_ALIGN;
            while fit > 0 && bytes(fit)? > limit {
                fit -= ROW_ALIGN;
            }
            fit
        };
        if part_rows == 0 && rows > 0 {
            return Err(Error::Gpu(format!(
                "tensor {label} ({rows}, {cols}): {ROW_ALIGN} rows of {} exceed the device's limit of {limit} bytes \
                 per buffer",
                ty.name()
            )));
        }
        Ok(part_rows)
    }

    /// Bytes a part of `rows` rows takes on the GPU: an f32 tensor's elements, or a
    /// [`QuantTensor`]'s buffer.
    pub fn part_bytes(label: &str, ty: GgmlType, rows: usize, cols: usize) -> Result<u64> {
        match ty {
            GgmlType::F32 => Ok(rows as u64 * cols as u64 * DType::F32.size()),
            _ => QuantTensor::gpu_bytes_for(label, ty, rows, cols),
        }
    }

    /// The row ranges (first row, rows) of [`SplitTensor::blocks`] for parts of the given rows,
    /// each f32 or not: no GPU needed.
    pub fn block_rows(parts: &[(usize, bool)], max_rows: usize) -> Result<Vec<(usize, usize)>> {
        let mut out = Vec::new();
        let mut first = 0;
        let err = |rows: usize| shape_err("split tensor blocks", format!("blocks of {max_rows} rows of {rows}"));
        for &(rows, f32) in parts {
            if !f32 {
                if rows > max_rows {
                    return Err(err(rows));
                }
                out.push((first, rows));
            } else {
                let step = if rows <= max_rows { rows } else { max_rows / ROW_ALIGN * ROW_ALIGN };
                if step == 0 {
                    return Err(err(rows));
                }
                out.extend((0..rows).step_by(step).map(|start| (first + start, step.min(rows - start))));
            }
            first += rows;
        }
        Ok(out)
    }

    /// A zero-filled (rows, cols) f32 tensor in parts of `part_rows` rows, a multiple of
    /// [`ROW_ALIGN`] unless it holds every row.
    pub fn zeros_in_parts(gpu: &Gpu, label: &str, rows: usize, cols: usize, part_rows: usize) -> Result<SplitTensor> {
        Self::zeros_in_parts_as(gpu, label, GgmlType::F32, rows, cols, part_rows)
    }

    /// A zero-filled (rows, cols) tensor kept as `ty`, in parts of `part_rows` rows.
    pub fn zeros_in_parts_as(
        gpu: &Gpu,
        label: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        part_rows: usize,
    ) -> Result<SplitTensor> {
        let op = "split tensor";
        if part_rows == 0 || (part_rows < rows && !part_rows.is_multiple_of(ROW_ALIGN)) {
            return Err(shape_err(op, format!("{label}: parts of {part_rows} rows of {rows}")));
        }
        let parts = (0..rows.max(1))
            .step_by(part_rows)
            .enumerate()
            .map(|(i, start)| {
                let (name, prows) = (format!("{label}[{i}]"), part_rows.min(rows - start));
                Ok(match ty {
                    GgmlType::F32 => Weight::F32(Tensor::zeros(gpu, &name, &[prows, cols], DType::F32)?),
                    _ => Weight::Quant(QuantTensor::zeros(gpu, &name, ty, prows, cols)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SplitTensor { parts, rows, cols, part_rows, ty })
    }

    /// (rows, cols).
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    pub fn numel(&self) -> usize {
        self.rows * self.cols
    }

    /// F32, or the GGML type every part is kept in.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Bytes the parts take on the GPU.
    pub fn gpu_bytes(&self) -> u64 {
        self.parts.iter().map(Weight::gpu_bytes).sum()
    }

    /// The parts in row order, each with its first row.
    pub fn parts(&self) -> impl Iterator<Item = (usize, &Weight)> {
        self.parts.iter().enumerate().map(|(i, t)| (i * self.part_rows, t))
    }

    /// The rows of every part but the last.
    pub fn part_rows(&self) -> usize {
        self.part_rows
    }

    pub fn num_parts(&self) -> usize {
        self.parts.len()
    }

    /// Consecutive row ranges, none across parts, each with its first row: an f32 part in views
    /// of at most `max_rows` rows (rounded down to a multiple of [`ROW_ALIGN`] when the part is
    /// longer), a part kept in a GGML format whole (it has no views), which must then be at most
    /// `max_rows` rows.
    pub fn blocks(&self, max_rows: usize) -> Result<Vec<(usize, Weight)>> {
        let parts: Vec<(usize, bool)> = self.parts.iter().map(|p| (p.shape()[0], p.ty() == GgmlType::F32)).collect();
        let mut out = Vec::new();
        for (first, rows) in Self::block_rows(&parts, max_rows)? {
            let (start, part) = (first / self.part_rows * self.part_rows, &self.parts[first / self.part_rows]);
            out.push((
                first,
                match part {
                    Weight::F32(t) => Weight::F32(t.view((first - start) * self.cols, &[rows, self.cols])?),
                    _ => part.clone(),
                },
            ));
        }
        Ok(out)
    }

    /// Writes f32 `data` into elements `start..start + data.len()` (row-major over the whole
    /// tensor) of an f32 split tensor, across parts as needed.
    pub fn write_f32_at(&self, gpu: &Gpu, start: usize, data: &[f32]) -> Result<()> {
        if self.ty != GgmlType::F32 || start + data.len() > self.numel() {
            let detail = format!("{} f32 at element {start} into {:?} {}", data.len(), self.shape(), self.ty.name());
            return Err(shape_err("write", detail));
        }
        let per_part = self.part_rows * self.cols;
        let (mut at, mut rest) = (start, data);
        while !rest.is_empty() {
            let (part, offset) = (at / per_part, at % per_part);
            let len = rest.len().min(per_part - offset);
            let Weight::F32(t) = &self.parts[part] else { unreachable!("an f32 split tensor has f32 parts") };
            t.write_f32_at(gpu, offset, &rest[..len])?;
            (at, rest) = (at + len, &rest[len..]);
        }
        Ok(())
    }

    /// Writes the whole tensor, called `name`, from its `bytes` of GGML type `ty` (rows back to
    /// back), part by part, each converted as [`Weight::write_ggml`] converts.
    pub fn write_ggml(&self, gpu: &Gpu, name: &str, ty: GgmlType, bytes: &[u8]) -> Result<()> {
        let row_bytes = ty.bytes_for(self.cols as u64).ok_or_else(|| Error::Tensor {
            name: name.into(),
            detail: format!("rows of {} values are not whole {} blocks", self.cols, ty.name()),
        })? as usize;
        for (first, part) in self.parts() {
            let rows = part.shape()[0];
            let part_bytes = bytes.get(first * row_bytes..(first + rows) * row_bytes).ok_or_else(|| Error::Tensor {
                name: name.into(),
                detail: format!("{} bytes for {} rows of {row_bytes}", bytes.len(), self.rows),
            })?;
            part.write_ggml(gpu, name, ty, part_bytes)?;
        }
        Ok(())
    }

    /// Reads an f32 split tensor back, parts in order (for tests and export).
    pub async fn read_f32(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.numel());
        for part in &self.parts {
            let Weight::F32(t) = part else {
                return Err(shape_err("read", format!("a {} tensor as f32", self.ty.name())));
            };
            out.extend(t.read_f32(gpu).await?);
        }
        Ok(out)
    }
}
