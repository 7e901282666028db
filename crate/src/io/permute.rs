//! llama.cpp's Q/K row permutation, and its inverse.
//!
//! For llama-architecture models, llama.cpp's converter reorders the rows of `attn_q.weight`
//! (with NH heads) and `attn_k.weight` (with NKV heads) so that its rotary embedding can rotate
//! adjacent pairs. Within each head of HD = rows / heads rows:
//!
//! GGUF row `2i + j` holds Hugging Face row `j·HD/2 + i`, for `i < HD/2`, `j ∈ {0, 1}`.
//!
//! The matrix is row-major (rows, cols) in any GGML type; rows move whole, as bytes, so quantized
//! blocks are never split. Biases (one value per row) permute the same way with `cols = 1`.

use super::ggml::GgmlType;
use super::LoadError;

/// GGUF → Hugging Face order: returns `data` (rows, cols) with each head's rows un-interleaved.
pub fn gguf_to_hf_qk_rows(
    tensor: &str,
    data: &[u8],
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_head: usize,
) -> Result<Vec<u8>, LoadError> {
    permute_rows(tensor, data, ty, rows, cols, n_head, true)
}

/// Hugging Face → GGUF order, the inverse of [`gguf_to_hf_qk_rows`] (for adapter export).
pub fn hf_to_gguf_qk_rows(
    tensor: &str,
    data: &[u8],
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_head: usize,
) -> Result<Vec<u8>, LoadError> {
    permute_rows(tensor, data, ty, rows, cols, n_head, false)
}

fn permute_rows(
    tensor: &str,
    data: &[u8],
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_head: usize,
    to_hf: bool,
) -> Result<Vec<u8>, LoadError> {
    let fail = |reason: String| LoadError::Permute { tensor: tensor.into(), reason };
    let row_bytes = ty.bytes_for(cols as u64).and_then(|b| usize::try_from(b).ok()).ok_or_else(|| {
        fail(format!("a row of {cols} elements is not a whole number of {} blocks of {}", ty.name(), ty.block_size()))
    })?;
    if n_head == 0 || !rows.is_multiple_of(n_head) || !(rows / n_head).is_multiple_of(2) {
        return Err(fail(format!("{rows} rows do not split into {n_head} heads of an even size")));
    }
    if rows.checked_mul(row_bytes) != Some(data.len()) {
        return Err(fail(format!("{} bytes, expected {rows} rows of {row_bytes} bytes", data.len())));
    }
    if data.is_empty() {
        // Rows of zero bytes: nothing moves, and `rows` is not bounded by the data's length.
        return Ok(Vec::new());
    }
    let hd = rows / n_head;
    let mut out = vec![0u8; data.len()];
    for h in 0..n_head {
        for i in 0..hd / 2 {
            for j in 0..2 {
                let gguf = h * hd + 2 * i + j;
                let hf = h * hd + j * hd / 2 + i;
                let (to, from) = if to_hf { (hf, gguf) } else { (gguf, hf) };
                out[to * row_bytes..(to + 1) * row_bytes]
                    .copy_from_slice(&data[from * row_bytes..(from + 1) * row_bytes]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A (rows, 1) f32 column whose row r holds r.
    fn column(rows: usize) -> Vec<u8> {
        (0..rows).flat_map(|r| (r as f32).to_le_bytes()).collect()
    }

    fn values(bytes: &[u8]) -> Vec<f32> {
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
    }

    #[test]
    fn follows_the_rule_on_a_small_example() {
        // 2 heads of HD = 6. Reading: GGUF row 2i+j of a head holds HF row j·3+i.
        let hf = values(&gguf_to_hf_qk_rows("q", &column(12), GgmlType::F32, 12, 1, 2).unwrap());
        assert_eq!(hf, [0.0, 2.0, 4.0, 1.0, 3.0, 5.0, 6.0, 8.0, 10.0, 7.0, 9.0, 11.0]);
        // Writing, as llama.cpp's converter does: GGUF row 2i+j = HF row j·HD/2+i.
        let gguf = values(&hf_to_gguf_qk_rows("q", &column(12), GgmlType::F32, 12, 1, 2).unwrap());
        assert_eq!(gguf, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0, 6.0, 9.0, 7.0, 10.0, 8.0, 11.0]);
        for (r, v) in gguf.iter().enumerate() {
            let (h, within) = (r / 6, r % 6);
            let (i, j) = (within / 2, within % 2);
            assert_eq!(*v as usize, h * 6 + j * 3 + i);
        }
    }

    #[test]
    fn round_trips_quantized_rows() {
        // 3 heads of HD = 8 rows of 64 Q4_1 elements (2 blocks of 20 bytes per row).
        let (rows, cols, heads) = (24, 64, 3);
        let data: Vec<u8> = (0..rows * 40).map(|i| (i * 7 % 251) as u8).collect();
        let hf = gguf_to_hf_qk_rows("k", &data, GgmlType::Q4_1, rows, cols, heads).unwrap();
        assert_ne!(hf, data);
        // Rows moved whole: HF row 1 (i = 1, j = 0) is GGUF row 2.
        assert_eq!(hf[40..80], data[80..120]);
        assert_eq!(hf_to_gguf_qk_rows("k", &hf, GgmlType::Q4_1, rows, cols, heads).unwrap(), data);
    }

    #[test]
    fn rejects_bad_shapes() {
        let err = gguf_to_hf_qk_rows("blk.0.attn_q.weight", &[0; 8 * 20], GgmlType::Q4_1, 8, 33, 2).unwrap_err();
        assert!(matches!(err, LoadError::Permute { .. }) && err.to_string().contains("blk.0.attn_q.weight"));
        assert!(gguf_to_hf_qk_rows("q", &column(6), GgmlType::F32, 6, 1, 2).is_err());
        assert!(gguf_to_hf_qk_rows("q", &column(8), GgmlType::F32, 8, 1, 0).is_err());
        assert!(gguf_to_hf_qk_rows("q", &column(7), GgmlType::F32, 8, 1, 2).is_err());
    }

    #[test]
    fn empty_rows_return_at_once() {
        // 2^40 rows of 0 columns: no bytes, and no loop over the rows.
        assert_eq!(gguf_to_hf_qk_rows("q", &[], GgmlType::F32, 1 << 40, 0, 2).unwrap(), Vec::<u8>::new());
        assert_eq!(hf_to_gguf_qk_rows("q", &[], GgmlType::Q8_0, 1 << 40, 0, 1).unwrap(), Vec::<u8>::new());
    }
}
