//! A small GGUF (v3) writer: metadata of scalar and string values and tensors of any GGML type
//! given as their bytes, enough for llama.cpp LoRA adapters and small test models.

use super::ggml::GgmlType;

/// A metadata value to write.
pub enum GgufWriteValue {
    U32(u32),
    F32(f32),
    Str(String),
}

/// A tensor to write: `shape` row-major (outermost first), as PyTorch holds it, and its bytes
/// in GGML type `ty`.
pub struct GgufWriteTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub ty: GgmlType,
    pub bytes: Vec<u8>,
}

impl GgufWriteTensor {
    /// An f32 tensor.
    pub fn f32(name: String, shape: Vec<usize>, data: &[f32]) -> Self {
        GgufWriteTensor { name, shape, ty: GgmlType::F32, bytes: bytemuck::cast_slice(data).to_vec() }
    }
}

const ALIGNMENT: usize = 32;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// The bytes of a GGUF file with `metadata` and `tensors`, data aligned to 32.
pub fn write_gguf(metadata: &[(&str, GgufWriteValue)], tensors: &[GgufWriteTensor]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(b"GGUF");
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        put_str(&mut out, key);
        match value {
            GgufWriteValue::U32(v) => {
                out.extend(4u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            GgufWriteValue::F32(v) => {
                out.extend(6u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            GgufWriteValue::Str(s) => {
                out.extend(8u32.to_le_bytes());
                put_str(&mut out, s);
            }
        }
    }
    let mut offset = 0usize;
    for t in tensors {
        put_str(&mut out, &t.name);
        out.extend((t.shape.len() as u32).to_le_bytes());
        // GGUF lists dimensions innermost first.
        for d in t.shape.iter().rev() {
            out.extend((*d as u64).to_le_bytes());
        }
        out.extend(t.ty.id().to_le_bytes());
        out.extend((offset as u64).to_le_bytes());
        offset = (offset + t.bytes.len()).next_multiple_of(ALIGNMENT);
    }
    out.resize(out.len().next_multiple_of(ALIGNMENT), 0);
    for t in tensors {
        out.extend(&t.bytes);
        out.resize(out.len().next_multiple_of(ALIGNMENT), 0);
    }
    out
}
