//! Frozen weights: a matrix kept as f32, in a GGML format ([`QuantTensor`]: f16, bf16 or
//! quantized), or split by rows into parts of either kind ([`SplitTensor`]).

use super::{Gpu, QuantTensor, SplitTensor, Tensor};
use crate::error::{Error, Result};
use crate::io::ggml::{self, GgmlType};
use crate::io::LoadError;

/// A frozen weight. A clone is another handle to the same GPU buffers.
#[derive(Clone, Debug)]
pub enum Weight {
    F32(Tensor),
    Quant(QuantTensor),
    Split(SplitTensor),
}

/// Elements dequantized per upload of an f32 tensor: bounds the host memory a tensor takes to
/// its file bytes plus 4 MB, however large it is.
const DEQUANTIZE_CHUNK: usize = 1 << 20;

impl Weight {
    /// The row-major shape: (out, in) for a projection.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Weight::F32(t) => t.shape().to_vec(),
            Weight::Quant(q) => vec![q.rows(), q.cols()],
            Weight::Split(t) => t.shape().to_vec(),
        }
    }

    pub fn numel(&self) -> usize {
        self.shape().iter().product()
    }

    /// F32, or the GGML type it is kept in.
    pub fn ty(&self) -> GgmlType {
        match self {
            Weight::F32(_) => GgmlType::F32,
            Weight::Quant(q) => q.ty(),
            Weight::Split(t) => t.ty(),
        }
    }

    /// The f32 tensor, or `None` for a split or quantized weight.
    pub fn f32(&self) -> Option<&Tensor> {
        match self {
            Weight::F32(t) => Some(t),
            Weight::Split(_) | Weight::Quant(_) => None,
        }
    }

    /// Bytes on the GPU.
    pub fn gpu_bytes(&self) -> u64 {
        match self {
            Weight::F32(t) => t.byte_size(),
            Weight::Quant(q) => q.gpu_bytes(),
            Weight::Split(t) => t.gpu_bytes(),
        }
    }

    /// The error for f32 access to a weight kept in a GGML format.
    pub fn not_f32(&self, name: &str) -> Error {
        Error::Tensor {
            name: name.into(),
            detail: format!("kept as {} on the GPU; load the model dequantized for f32 access", self.ty().name()),
        }
    }

    /// Writes f32 values into elements `start..start + data.len()` (row-major) of an f32 weight,
    /// or of a split weight with f32 parts, called `name`.
    pub fn write_f32_at(&self, gpu: &Gpu, name: &str, start: usize, data: &[f32]) -> Result<()> {
        match self {
            Weight::F32(t) => t.write_f32_at(gpu, start, data),
            Weight::Split(t) if t.ty() == GgmlType::F32 => t.write_f32_at(gpu, start, data),
            _ => Err(self.not_f32(name)),
        }
    }

    /// Writes every value of an f32 weight called `name`.
    pub fn write_f32(&self, gpu: &Gpu, name: &str, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() {
            let detail = format!("{} values for shape {:?}", data.len(), self.shape());
            return Err(Error::Tensor { name: name.into(), detail });
        }
        self.write_f32_at(gpu, name, 0, data)
    }

    /// Reads an f32 weight called `name` back (for tests and export).
    pub async fn read_f32(&self, gpu: &Gpu, name: &str) -> Result<Vec<f32>> {
        match self {
            Weight::F32(t) => t.read_f32(gpu).await,
            Weight::Split(t) if t.ty() == GgmlType::F32 => t.read_f32(gpu).await,
            _ => Err(self.not_f32(name)),
        }
    }

    /// Uploads the whole weight, called `name`, from its `bytes` of GGML type `ty` (a file's
    /// tensor): kept as they are when the weight is of that type, else converted (dequantized
    /// to f32, and rounded to f16 or bf16 when the weight is kept so). An f32 weight is filled a
    /// chunk at a time and a split one part by part, so no host copy of a whole large tensor in
    /// another type is ever made.
    pub fn write_ggml(&self, gpu: &Gpu, name: &str, ty: GgmlType, bytes: &[u8]) -> Result<()> {
        let n = self.numel();
        let expected = ty.bytes_for(n as u64);
        if expected != Some(bytes.len() as u64) {
            let expected = expected.unwrap_or(u64::MAX);
            return Err(LoadError::ByteCount { tensor: name.into(), got: bytes.len() as u64, expected }.into());
        }
        let t = match self {
            Weight::Split(t) => return t.write_ggml(gpu, name, ty, bytes),
            Weight::Quant(q) if q.ty() == ty => return q.write_ggml(gpu, name, bytes).map(|_| gpu.flush_writes()),
            Weight::Quant(q) if matches!(q.ty(), GgmlType::F16 | GgmlType::BF16) => {
                // A 16-bit weight from a file of another type: rounded to the type it is kept in.
                let values = ggml::dequantize_to_vec(name, ty, bytes, n)?;
                return q.write_ggml(gpu, name, &to_16bit(q.ty(), &values)).map(|_| gpu.flush_writes());
            }
            Weight::Quant(q) => {
                let (ty, kept) = (ty.name(), q.ty().name());
                let detail = format!("type {ty}, but the weight is kept as {kept}, which it cannot be converted to");
                return Err(Error::Tensor { name: name.into(), detail });
            }
            Weight::F32(t) => t,
        };
        let chunk = DEQUANTIZE_CHUNK.next_multiple_of(ty.block_size() as usize);
        let mut out = vec![0f32; chunk.min(n)];
        for start in (0..n).step_by(chunk) {
            let len = chunk.min(n - start);
            let (b0, b1) = (ty.bytes_for(start as u64), ty.bytes_for((start + len) as u64));
            let (b0, b1) = (b0.unwrap_or(0) as usize, b1.unwrap_or(0) as usize);
            ggml::dequantize(name, ty, &bytes[b0..b1], &mut out[..len])?;
            t.write_f32_at(gpu, start, &out[..len])?;
            gpu.flush_writes();
        }
        Ok(())
    }
}

/// f32 values as the little-endian bytes of F16 or BF16 (`ty`), rounded to nearest even.
fn to_16bit(ty: GgmlType, values: &[f32]) -> Vec<u8> {
    let bits = |v: f32| match ty {
        GgmlType::BF16 => half::bf16::from_f32(v).to_bits(),
        _ => half::f16::from_f32(v).to_bits(),
    };
    values.iter().flat_map(|&v| bits(v).to_le_bytes()).collect()
}
