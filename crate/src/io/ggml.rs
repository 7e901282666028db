//! GGML tensor types (ids, block sizes, byte sizes as llama.cpp defines them) and CPU
//! dequantization to f32 for F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K.
//!
//! A GGML tensor row of `n` elements is `n / block_size` blocks stored back to back; all values
//! are little-endian. Block layouts (llama.cpp `ggml-common.h`, QK_K = 256):
//!
//! | type | elements | bytes | layout |
//! |---|---|---|---|
//! | Q8_0 | 32 | 34 | `d: f16, qs: [i8; 32]`; `x = d·q` |
//! | Q4_0 | 32 | 18 | `d: f16, qs: [u8; 16]`; `x[j] = d·(lo(qs[j]) − 8)`, `x[j+16] = d·(hi(qs[j]) − 8)` |
//! | Q4_1 | 32 | 20 | `d: f16, m: f16, qs: [u8; 16]`; `x[j] = d·lo(qs[j]) + m`, `x[j+16] = d·hi(qs[j]) + m` |
//! | Q4_K | 256 | 144 | `d: f16, dmin: f16, scales: [u8; 12]` (8 packed 6-bit scale/min pairs), `qs: [u8; 128]` |
//! | Q6_K | 256 | 210 | `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16` |

use half::{bf16, f16};

use super::LoadError;

macro_rules! ggml_types {
    ($($name:ident = $id:literal, $block:literal, $bytes:expr;)*) => {
        /// A GGML tensor type, with llama.cpp's numeric id.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum GgmlType { $($name,)* }

        impl GgmlType {
            /// The type with llama.cpp id `id`, if there is one.
            pub fn from_id(id: u32) -> Option<Self> {
                match id { $($id => Some(Self::$name),)* _ => None }
            }
            /// llama.cpp's numeric id of the type.
            pub fn id(self) -> u32 {
                match self { $(Self::$name => $id,)* }
            }
            /// The type's name as llama.cpp prints it, e.g. `"Q4_K"`.
            pub fn name(self) -> &'static str {
                match self { $(Self::$name => stringify!($name),)* }
            }
            /// Elements per block (1 for plain types).
            pub fn block_size(self) -> u64 {
                match self { $(Self::$name => $block,)* }
            }
            /// Bytes per block.
            pub fn block_bytes(self) -> u64 {
                match self { $(Self::$name => $bytes,)* }
            }
        }
    };
}

const QK_K: u64 = 256;

ggml_types! {
    F32 = 0, 1, 4;
    F16 = 1, 1, 2;
    Q4_0 = 2, 32, 2 + 16;
    Q4_1 = 3, 32, 2 + 2 + 16;
    Q5_0 = 6, 32, 2 + 4 + 16;
    Q5_1 = 7, 32, 2 + 2 + 4 + 16;
    Q8_0 = 8, 32, 2 + 32;
    Q8_1 = 9, 32, 4 + 4 + 32;
    Q2_K = 10, 256, 2 + 2 + QK_K / 16 + QK_K / 4;
    Q3_K = 11, 256, 2 + QK_K / 4 + QK_K / 8 + 12;
    Q4_K = 12, 256, 2 + 2 + QK_K / 2 + 12;
    Q5_K = 13, 256, 2 + 2 + QK_K / 2 + QK_K / 8 + 12;
    Q6_K = 14, 256, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16;
    Q8_K = 15, 256, 4 + QK_K + QK_K / 8;
    IQ2_XXS = 16, 256, 2 + QK_K / 4;
    IQ2_XS = 17, 256, 2 + QK_K / 4 + QK_K / 32;
    IQ3_XXS = 18, 256, 2 + QK_K / 4 + QK_K / 8;
    IQ1_S = 19, 256, 2 + QK_K / 8 + QK_K / 16;
    IQ4_NL = 20, 32, 2 + 16;
    IQ3_S = 21, 256, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4;
    IQ2_S = 22, 256, 2 + QK_K / 4 + QK_K / 16;
    IQ4_XS = 23, 256, 2 + 2 + QK_K / 2 + QK_K / 64;
    I8 = 24, 1, 1;
    I16 = 25, 1, 2;
    I32 = 26, 1, 4;
    I64 = 27, 1, 8;
    F64 = 28, 1, 8;
    IQ1_M = 29, 256, QK_K / 8 + QK_K / 16 + QK_K / 32;
    BF16 = 30, 1, 2;
    TQ1_0 = 34, 256, 2 + 4 * 13;
    TQ2_0 = 35, 256, 2 + 64;
    MXFP4 = 39, 32, 1 + 16;
    NVFP4 = 40, 64, 4 + 32;
    Q1_0 = 41, 128, 2 + 16;
}

impl GgmlType {
    /// Bytes of `n` elements, or `None` when `n` is not a whole number of blocks or the size
    /// overflows.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        if !n.is_multiple_of(self.block_size()) {
            return None;
        }
        (n / self.block_size()).checked_mul(self.block_bytes())
    }

    /// Whether [`dequantize`] supports this type.
    pub fn can_dequantize(self) -> bool {
        use GgmlType::*;
        matches!(self, F32 | F16 | BF16 | Q8_0 | Q4_0 | Q4_1 | Q4_K | Q6_K)
    }
}

/// Dequantizes `bytes`, a whole number of `ty` blocks of tensor `tensor`, into `out`:
/// `out.len()` elements, exactly `bytes.len() / block_bytes · block_size`. The arithmetic follows
/// llama.cpp's reference `dequantize_row_*` in f32, operation for operation.
pub fn dequantize(tensor: &str, ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), LoadError> {
    if !ty.can_dequantize() {
        return Err(LoadError::UnsupportedType { tensor: tensor.to_string(), ty: ty.name() });
    }
    let expected = ty.bytes_for(out.len() as u64);
    if expected != Some(bytes.len() as u64) {
        return Err(LoadError::ByteCount {
            tensor: tensor.to_string(),
            got: bytes.len() as u64,
            expected: expected.unwrap_or(u64::MAX),
        });
    }
    let (bb, bs) = (ty.block_bytes() as usize, ty.block_size() as usize);
    let blocks = bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bs));
    match ty {
        GgmlType::F32 => blocks.for_each(|(b, y)| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        GgmlType::F16 => blocks.for_each(|(b, y)| y[0] = f16_at(b, 0)),
        GgmlType::BF16 => blocks.for_each(|(b, y)| y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        GgmlType::Q8_0 => blocks.for_each(|(b, y)| dequantize_q8_0(b, y)),
        GgmlType::Q4_0 => blocks.for_each(|(b, y)| dequantize_q4_0(b, y)),
        GgmlType::Q4_1 => blocks.for_each(|(b, y)| dequantize_q4_1(b, y)),
        GgmlType::Q4_K => blocks.for_each(|(b, y)| dequantize_q4_k(b, y)),
        GgmlType::Q6_K => blocks.for_each(|(b, y)| dequantize_q6_k(b, y)),
        _ => unreachable!("can_dequantize covers every arm"),
    }
    Ok(())
}

/// Dequantizes a whole tensor of `n` elements into a new vector (see [`dequantize`]).
pub fn dequantize_to_vec(tensor: &str, ty: GgmlType, bytes: &[u8], n: usize) -> Result<Vec<f32>, LoadError> {
    // Bound the allocation by the bytes at hand before trusting `n`.
    if ty.bytes_for(n as u64) != Some(bytes.len() as u64) {
        return Err(LoadError::ByteCount {
            tensor: tensor.to_string(),
            got: bytes.len() as u64,
            expected: ty.bytes_for(n as u64).unwrap_or(u64::MAX),
        });
    }
    let mut out = vec![0.0; n];
    dequantize(tensor, ty, bytes, &mut out)?;
    Ok(out)
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Block (34 bytes) → 32 values.
fn dequantize_q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (y, &q) in y.iter_mut().zip(&b[2..34]) {
        *y = q as i8 as f32 * d;
    }
}

/// Block (18 bytes) → 32 values.
fn dequantize_q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, &q) in b[2..18].iter().enumerate() {
        y[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// Block (20 bytes) → 32 values.
fn dequantize_q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (j, &q) in b[4..20].iter().enumerate() {
        y[j] = (q & 0x0F) as f32 * d + m;
        y[j + 16] = (q >> 4) as f32 * d + m;
    }
}

/// The `j`-th (of 8) 6-bit scale and min of a Q4_K/Q5_K block's 12 packed `scales` bytes.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Block (144 bytes) → 256 values: 4 groups of 64, each two 32-value halves (low nibbles, then
/// high nibbles of the same 32 bytes) with their own scale and min.
fn dequantize_q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    for (g, (qs, y)) in b[16..144].chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * g, scales);
        let (sc2, m2) = scale_min_k4(2 * g + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        for (l, &q) in qs.iter().enumerate() {
            y[l] = d1 * (q & 0x0F) as f32 - m1;
            y[l + 32] = d2 * (q >> 4) as f32 - m2;
        }
    }
}

/// Block (210 bytes) → 256 values: two halves of 128, each from 64 `ql` bytes (low 4 bits),
/// 32 `qh` bytes (high 2 bits) and 8 signed scales, one per 16 values.
fn dequantize_q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for (n, y) in y.chunks_exact_mut(128).enumerate() {
        let ql = &b[64 * n..64 * n + 64];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        let sc = &b[192 + 8 * n..192 + 8 * n + 8];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_llama_cpp() {
        let cases = [(GgmlType::Q8_0, 32, 34), (GgmlType::Q4_0, 32, 18), (GgmlType::Q4_1, 32, 20)];
        for (ty, bs, bb) in cases {
            assert_eq!((ty.block_size(), ty.block_bytes()), (bs, bb), "{}", ty.name());
        }
        assert_eq!(GgmlType::Q4_K.block_bytes(), 144);
        assert_eq!(GgmlType::Q6_K.block_bytes(), 210);
        assert_eq!(GgmlType::from_id(30), Some(GgmlType::BF16));
        assert_eq!(GgmlType::from_id(4), None);
        assert_eq!(GgmlType::Q4_1.bytes_for(576), Some(18 * 20));
        assert_eq!(GgmlType::Q4_1.bytes_for(33), None);
        assert_eq!(GgmlType::F32.bytes_for(u64::MAX), None);
    }

    #[test]
    fn plain_types_and_errors() {
        let bytes: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(dequantize_to_vec("t", GgmlType::F32, &bytes, 2).unwrap(), vec![1.5, -2.0]);
        let bf = bf16::from_f32(-3.25).to_le_bytes();
        assert_eq!(dequantize_to_vec("t", GgmlType::BF16, &bf, 1).unwrap(), vec![-3.25]);
        let err = dequantize_to_vec("blk.0.x", GgmlType::Q4_1, &[0; 19], 32).unwrap_err();
        assert!(matches!(err, LoadError::ByteCount { .. }) && err.to_string().contains("blk.0.x"));
        let err = dequantize_to_vec("blk.0.y", GgmlType::Q5_K, &[0; 176], 256).unwrap_err();
        assert!(matches!(err, LoadError::UnsupportedType { ty: "Q5_K", .. }));
        assert!(err.to_string().contains("blk.0.y"));
    }
}
