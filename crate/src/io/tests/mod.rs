//! Tests of the model-file readers: synthetic files built here, the committed gguf-py fixture
//! (`tests/fixtures/gguf/`), and the real SmolLM2 file (fetched on first use).

mod gguf;
mod real_model;
mod safetensors;

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The real test model, fetched on first use.
pub fn smollm2_path() -> PathBuf {
    crate::model_file::smollm2_gguf()
}

/// Builds GGUF files byte by byte, including malformed ones.
pub struct GgufBuilder {
    pub version: u32,
    pub alignment: u64,
    /// Overrides the tensor count written in the preamble.
    pub n_tensors: Option<u64>,
    n_kv: u64,
    kv: Vec<u8>,
    /// Offsets are laid out in order, aligned.
    tensors: Vec<RawTensor>,
}

/// Name, dims, GGML type id, data.
type RawTensor = (Vec<u8>, Vec<u64>, u32, Vec<u8>);

pub fn gguf_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s);
}

impl GgufBuilder {
    pub fn new() -> Self {
        Self { version: 3, alignment: 32, n_tensors: None, n_kv: 0, kv: Vec::new(), tensors: Vec::new() }
    }

    /// A key of value type `type_id` whose encoded value is `value`.
    pub fn kv_raw(mut self, key: &[u8], type_id: u32, value: &[u8]) -> Self {
        gguf_string(&mut self.kv, key);
        self.kv.extend(type_id.to_le_bytes());
        self.kv.extend(value);
        self.n_kv += 1;
        self
    }

    pub fn kv_u32(self, key: &str, v: u32) -> Self {
        self.kv_raw(key.as_bytes(), 4, &v.to_le_bytes())
    }

    pub fn kv_str(self, key: &str, v: &str) -> Self {
        let mut value = Vec::new();
        gguf_string(&mut value, v.as_bytes());
        self.kv_raw(key.as_bytes(), 8, &value)
    }

    pub fn tensor(mut self, name: &str, dims: &[u64], type_id: u32, data: Vec<u8>) -> Self {
        self.tensors.push((name.as_bytes().to_vec(), dims.to_vec(), type_id, data));
        self
    }

    /// The file, with tensor offsets laid out in order (or as `offsets` says).
    pub fn build_with_offsets(&self, offsets: Option<&[u64]>) -> Vec<u8> {
        let align = |x: u64| x.div_ceil(self.alignment) * self.alignment;
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend(self.n_tensors.unwrap_or(self.tensors.len() as u64).to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        let mut next = 0;
        let mut placed = Vec::new();
        for (i, (name, dims, type_id, data)) in self.tensors.iter().enumerate() {
            let offset = offsets.map_or(next, |o| o[i]);
            next = align(offset + data.len() as u64);
            placed.push((offset, data));
            gguf_string(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            dims.iter().for_each(|d| out.extend(d.to_le_bytes()));
            out.extend(type_id.to_le_bytes());
            out.extend(offset.to_le_bytes());
        }
        let data_start = align(out.len() as u64) as usize;
        out.resize(data_start, 0);
        for (offset, data) in placed {
            let at = data_start + offset as usize;
            if out.len() < at + data.len() {
                out.resize(at + data.len(), 0);
            }
            out[at..at + data.len()].copy_from_slice(data);
        }
        out
    }

    pub fn build(&self) -> Vec<u8> {
        self.build_with_offsets(None)
    }
}
