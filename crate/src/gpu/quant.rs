//! Frozen weights that stay in their GGML format on the GPU (f16, bf16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)
//! and are dequantized inside the matmul kernels of `shaders/matmul_quant.wgsl`.
//!
//! A weight W (N, K) — N rows, K columns, GGML blocks along K as in GGUF — is repacked on upload
//! into one array of u32 words, so the kernels read whole aligned words instead of bytes of 34-,
//! 18- or 210-byte blocks. Blocks are numbered over the whole tensor, `b = row · (K / block) + kb`.
//! Two regions:
//!
//! - **quants**, from word 0, a fixed run of words per block, values in natural order: 4-bit
//!   values eight to a word (value i in bits 4i..4i+3), 8-bit values four to a word;
//! - **metadata**, from word [`QuantTensor::meta_offset`]:
//!
//! | type | quant words per block | metadata | GPU bytes / GGML bytes per block |
//! |---|---|---|---|
//! | F16, BF16 | none: the row-major halves, two to a word | none | 2 / 2 per value |
//! | Q8_0 | 8, signed bytes | `d` f16, two blocks to a word | 34 / 34 |
//! | Q4_0 | 4, nibbles | `d` f16, two blocks to a word | 18 / 18 |
//! | Q4_1 | 4, nibbles | one word: `(d, m)` f16 pair | 20 / 20 |
//! | Q4_K | 32, nibbles | five words: `(d, dmin)` f16 pair, then the 8 six-bit scales and the 8 six-bit mins as bytes | 148 / 144 |
//! | Q6_K | 48: 32 words of the low nibbles, then 16 words of the 2-bit high parts, 16 to a word | five words: `d` as f32, then the 16 signed scales as bytes | 212 / 210 |
//!
//! Every scale keeps its exact value (f16 stays f16, or becomes the f32 it converts to exactly),
//! and the kernels repeat llama.cpp's f32 arithmetic, so the values they use equal
//! [`io::ggml::dequantize`](crate::io::ggml::dequantize) (up to a fused multiply-add where the
//! driver contracts `d·q + m`, at most one rounding apart).

use half::f16;

use super::{DType, Gpu, Tensor};
use crate::error::{Error, Result};
use crate::io::ggml::GgmlType;
use crate::io::LoadError;

/// A frozen weight W (N, K) in a GGML format, repacked for the matmul kernels.
#[derive(Clone, Debug)]
pub struct QuantTensor {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    meta: u32,
    data: Tensor,
}

impl QuantTensor {
    /// The GGML types the kernels dequantize.
    pub const TYPES: [GgmlType; 7] =
        [GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::Q6_K];

    /// Whether `ty` can stay in its format on the GPU.
    pub fn supports(ty: GgmlType) -> bool {
        Self::TYPES.contains(&ty)
    }

    /// The K a weight of type `ty` must be a multiple of: the block size (32 or 256), or 8 for
    /// F16 and BF16 (the kernels read eight values of a row at a time).
    pub fn col_multiple(ty: GgmlType) -> usize {
        if is_16bit(ty) {
            8
        } else {
            ty.block_size() as usize
        }
    }

    /// Uploads tensor `name`, `rows` × `cols` elements of type `ty` given as its GGML bytes
    /// (`rows · cols / block · block_bytes` of them, rows back to back).
    pub fn from_ggml(
        gpu: &Gpu,
        name: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<QuantTensor> {
        let t = QuantTensor::zeros(gpu, name, ty, rows, cols)?;
        t.write_ggml(gpu, name, bytes)?;
        Ok(t)
    }

    /// A zero-filled weight of type `ty`, (`rows`, `cols`), to be filled by [`Self::write_ggml`].
    pub fn zeros(gpu: &Gpu, name: &str, ty: GgmlType, rows: usize, cols: usize) -> Result<QuantTensor> {
        let (words, meta) = layout(name, ty, rows, cols)?;
        let meta = u32::try_from(meta).map_err(|_| tensor_err(name, "too large for one GPU binding"))?;
        let data = Tensor::zeros(gpu, name, &[words], DType::U32)?;
        Ok(QuantTensor { ty, rows, cols, meta, data })
    }

    /// Repacks and uploads the GGML bytes of the whole weight (tensor `name` in messages).
    pub fn write_ggml(&self, gpu: &Gpu, name: &str, bytes: &[u8]) -> Result<()> {
        let (words, _) = repack(name, self.ty, self.rows, self.cols, bytes)?;
        self.data.write_u32(gpu, &words)
    }

    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// N, the output features of the linear layer.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// K, the input features of the linear layer.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The word where the metadata region starts (see the module docs).
    pub fn meta_offset(&self) -> u32 {
        self.meta
    }

    /// The words on the GPU.
    pub fn data(&self) -> &Tensor {
        &self.data
    }

    /// Bytes the weight takes on the GPU.
    pub fn gpu_bytes(&self) -> u64 {
        self.data.buffer().size()
    }

    /// Bytes a (`rows`, `cols`) weight of type `ty` would take on the GPU (an error names
    /// tensor `name` when it cannot stay in that type).
    pub fn gpu_bytes_for(name: &str, ty: GgmlType, rows: usize, cols: usize) -> Result<u64> {
        Ok(layout(name, ty, rows, cols)?.0 as u64 * 4)
    }
}

fn tensor_err(name: &str, detail: impl Into<String>) -> Error {
    Error::Tensor { name: name.to_string(), detail: detail.into() }
}

/// Quant words per block.
fn quant_words(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q8_0 => 8,
        GgmlType::Q4_0 | GgmlType::Q4_1 => 4,
        GgmlType::Q4_K => 32,
        GgmlType::Q6_K => 48,
        _ => 0,
    }
}

/// The GPU layout of a (`rows`, `cols`) weight of type `ty`: its words and the index of the
/// first metadata word.
fn layout(name: &str, ty: GgmlType, rows: usize, cols: usize) -> Result<(usize, usize)> {
    if !QuantTensor::supports(ty) {
        return Err(tensor_err(name, format!("GGML type {} cannot stay quantized on the GPU", ty.name())));
    }
    let mult = QuantTensor::col_multiple(ty);
    if rows == 0 || cols == 0 || !cols.is_multiple_of(mult) {
        return Err(tensor_err(
            name,
            format!("shape ({rows}, {cols}): {} needs rows > 0 and columns a multiple of {mult}", ty.name()),
        ));
    }
    let n = rows.checked_mul(cols).ok_or_else(|| tensor_err(name, "element count overflows"))?;
    if is_16bit(ty) {
        return Ok((n / 2, n / 2));
    }
    let blocks = n / ty.block_size() as usize;
    let meta = blocks * quant_words(ty);
    let meta_words = match ty {
        GgmlType::Q8_0 | GgmlType::Q4_0 => blocks.div_ceil(2),
        GgmlType::Q4_1 => blocks,
        _ => 5 * blocks,
    };
    Ok((meta + meta_words, meta))
}

/// Repacks the GGML bytes of a (`rows`, `cols`) tensor into the words of the GPU layout (see
/// the module docs); returns the words and the index of the first metadata word.
pub fn repack(name: &str, ty: GgmlType, rows: usize, cols: usize, bytes: &[u8]) -> Result<(Vec<u32>, usize)> {
    let (total, meta) = layout(name, ty, rows, cols)?;
    let n = rows * cols;
    let expected = ty.bytes_for(n as u64);
    if expected != Some(bytes.len() as u64) {
        let expected = expected.unwrap_or(u64::MAX);
        return Err(LoadError::ByteCount { tensor: name.to_string(), got: bytes.len() as u64, expected }.into());
    }
    if is_16bit(ty) {
        let words = bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        return Ok((words, meta));
    }
    let bb = ty.block_bytes() as usize;
    let mut words = vec![0u32; total];
    let (quants, metas) = words.split_at_mut(meta);
    let qw = quant_words(ty);
    for (i, (b, q)) in bytes.chunks_exact(bb).zip(quants.chunks_exact_mut(qw)).enumerate() {
        match ty {
            GgmlType::Q8_0 => {
                for (q, v) in q.iter_mut().zip(b[2..34].chunks_exact(4)) {
                    *q = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                }
                metas[i / 2] |= (u16_at(b, 0) as u32) << (16 * (i % 2));
            }
            GgmlType::Q4_0 => {
                pack_nibbles(q, &q4_values(&b[2..18]));
                metas[i / 2] |= (u16_at(b, 0) as u32) << (16 * (i % 2));
            }
            GgmlType::Q4_1 => {
                pack_nibbles(q, &q4_values(&b[4..20]));
                metas[i] = u16_at(b, 0) as u32 | (u16_at(b, 2) as u32) << 16;
            }
            GgmlType::Q4_K => {
                let mut values = [0u8; 256];
                for (g, qs) in b[16..144].chunks_exact(32).enumerate() {
                    for (l, &v) in qs.iter().enumerate() {
                        values[64 * g + l] = v & 0x0F;
                        values[64 * g + 32 + l] = v >> 4;
                    }
                }
                pack_nibbles(q, &values);
                let m = &mut metas[5 * i..5 * i + 5];
                m[0] = u16_at(b, 0) as u32 | (u16_at(b, 2) as u32) << 16;
                for j in 0..8 {
                    let (sc, mn) = scale_min_k4(j, &b[4..16]);
                    m[1 + j / 4] |= (sc as u32) << (8 * (j % 4));
                    m[3 + j / 4] |= (mn as u32) << (8 * (j % 4));
                }
            }
            GgmlType::Q6_K => {
                let (lo, hi) = q6_k_values(b);
                pack_nibbles(&mut q[..32], &lo);
                for (w, h) in q[32..].iter_mut().zip(hi.chunks_exact(16)) {
                    *w = h.iter().enumerate().fold(0, |acc, (j, &v)| acc | (v as u32) << (2 * j));
                }
                let m = &mut metas[5 * i..5 * i + 5];
                m[0] = f16::from_bits(u16_at(b, 208)).to_f32().to_bits();
                for (w, s) in m[1..].iter_mut().zip(b[192..208].chunks_exact(4)) {
                    *w = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                }
            }
            _ => unreachable!("supports() admits only the types above"),
        }
    }
    Ok((words, meta))
}

/// F16 and BF16: two values to a word, no blocks.
fn is_16bit(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F16 | GgmlType::BF16)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Packs 4-bit values into words, eight to a word, value i of a word in bits 4i..4i+3.
fn pack_nibbles(words: &mut [u32], values: &[u8]) {
    for (w, v) in words.iter_mut().zip(values.chunks_exact(8)) {
        *w = v.iter().enumerate().fold(0, |acc, (j, &v)| acc | (v as u32) << (4 * j));
    }
}

/// The 32 nibbles of a Q4_0/Q4_1 block in value order: low nibbles of the 16 bytes, then high.
fn q4_values(qs: &[u8]) -> [u8; 32] {
    let mut values = [0u8; 32];
    for (j, &v) in qs.iter().enumerate() {
        values[j] = v & 0x0F;
        values[j + 16] = v >> 4;
    }
    values
}

/// The `j`-th (of 8) 6-bit scale and min of a Q4_K block's 12 packed `scales` bytes.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// The low nibbles and the 2-bit high parts of a Q6_K block's 256 values, in value order.
fn q6_k_values(b: &[u8]) -> ([u8; 256], [u8; 256]) {
    let (mut lo, mut hi) = ([0u8; 256], [0u8; 256]);
    for n in 0..2 {
        let ql = &b[64 * n..64 * n + 64];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        for l in 0..32 {
            let y = 128 * n + l;
            lo[y] = ql[l] & 0x0F;
            lo[y + 32] = ql[l + 32] & 0x0F;
            lo[y + 64] = ql[l] >> 4;
            lo[y + 96] = ql[l + 32] >> 4;
            for (s, o) in [0, 32, 64, 96].into_iter().enumerate() {
                hi[y + o] = (qh[l] >> (2 * s)) & 3;
            }
        }
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repack_sizes_and_errors() {
        let (words, meta) = repack("w", GgmlType::Q4_1, 3, 64, &[0; 6 * 20]).unwrap();
        assert_eq!((words.len(), meta), (6 * 5, 24));
        let (words, meta) = repack("w", GgmlType::Q8_0, 1, 96, &[0; 3 * 34]).unwrap();
        assert_eq!((words.len(), meta), (3 * 8 + 2, 24));
        let err = repack("blk.0.w", GgmlType::Q4_0, 2, 48, &[0; 54]).unwrap_err();
        assert!(err.to_string().contains("blk.0.w") && err.to_string().contains("multiple of 32"), "{err}");
        let err = repack("w", GgmlType::Q4_0, 2, 64, &[0; 70]).unwrap_err();
        assert!(err.to_string().contains("72"), "{err}");
        assert!(repack("w", GgmlType::Q5_K, 1, 256, &[0; 176]).is_err());
    }
}
