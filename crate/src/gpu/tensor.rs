//! Tensors: a shape and an element type over a byte range of a GPU buffer.

use std::sync::Arc;

use super::Gpu;
use crate::error::{shape_err, Error, Result};

/// Element types of tensors on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
    I32,
}

impl DType {
    pub fn size(self) -> u64 {
        4
    }
}

/// A dense row-major tensor living in (part of) a GPU buffer. Cloning shares the buffer.
#[derive(Clone, Debug)]
pub struct Tensor {
    buffer: Arc<wgpu::Buffer>,
    offset: u64,
    shape: Vec<usize>,
    dtype: DType,
}

/// Offsets of views must be multiples of this (WebGPU's minStorageBufferOffsetAlignment bound).
pub const VIEW_ALIGN: u64 = 256;

impl Tensor {
    /// A new zero-filled tensor in a buffer of its own.
    pub fn zeros(gpu: &Gpu, label: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let bytes = Self::buffer_bytes(shape.iter().product(), dtype);
        if bytes > gpu.info.max_buffer {
            return Err(Error::Gpu(format!(
                "tensor {label} {shape:?} needs {bytes} bytes, above the device's buffer limit of {}",
                gpu.info.max_buffer
            )));
        }
        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        // In the browser a buffer is neither Send nor Sync; the Arc only shares it among views.
        #[allow(clippy::arc_with_non_send_sync)]
        let buffer = Arc::new(buffer);
        Ok(Tensor { buffer, offset: 0, shape: shape.to_vec(), dtype })
    }

    /// The size of the buffer [`Tensor::zeros`] makes for `numel` elements of `dtype`.
    pub fn buffer_bytes(numel: usize, dtype: DType) -> u64 {
        (numel.max(1) as u64 * dtype.size()).next_multiple_of(16)
    }

    /// A new tensor holding `data`.
    pub fn from_f32(gpu: &Gpu, label: &str, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let t = Tensor::zeros(gpu, label, shape, DType::F32)?;
        t.write_f32(gpu, data)?;
        Ok(t)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn byte_size(&self) -> u64 {
        self.numel() as u64 * self.dtype.size()
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// A view of `shape` starting `start` elements into this tensor.
    pub fn view(&self, start: usize, shape: &[usize]) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        if start + numel > self.numel() {
            return Err(shape_err("view", format!("{start}+{numel} elements past {:?}", self.shape)));
        }
        let offset = self.offset + start as u64 * self.dtype.size();
        if !offset.is_multiple_of(VIEW_ALIGN) {
            return Err(shape_err("view", format!("byte offset {offset} is not a multiple of {VIEW_ALIGN}")));
        }
        Ok(Tensor { buffer: self.buffer.clone(), offset, shape: shape.to_vec(), dtype: self.dtype })
    }

    /// The same bytes seen with another shape of equal size.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if shape.iter().product::<usize>() != self.numel() {
            return Err(shape_err("reshape", format!("{:?} into {shape:?}", self.shape)));
        }
        Ok(Tensor { shape: shape.to_vec(), ..self.clone() })
    }

    pub fn write_f32(&self, gpu: &Gpu, data: &[f32]) -> Result<()> {
        self.write_bytes(gpu, bytemuck::cast_slice(data), DType::F32)
    }

    /// Writes `data` into elements `start..start + data.len()` of an f32 tensor.
    pub fn write_f32_at(&self, gpu: &Gpu, start: usize, data: &[f32]) -> Result<()> {
        if self.dtype != DType::F32 || start + data.len() > self.numel() {
            return Err(shape_err(
                "write",
                format!("{} f32 at element {start} into {:?} {:?}", data.len(), self.dtype, self.shape),
            ));
        }
        gpu.queue.write_buffer(&self.buffer, self.offset + start as u64 * 4, bytemuck::cast_slice(data));
        Ok(())
    }

    pub fn write_u32(&self, gpu: &Gpu, data: &[u32]) -> Result<()> {
        self.write_bytes(gpu, bytemuck::cast_slice(data), DType::U32)
    }

    pub fn write_i32(&self, gpu: &Gpu, data: &[i32]) -> Result<()> {
        self.write_bytes(gpu, bytemuck::cast_slice(data), DType::I32)
    }

    fn write_bytes(&self, gpu: &Gpu, bytes: &[u8], dtype: DType) -> Result<()> {
        if dtype != self.dtype || bytes.len() as u64 != self.byte_size() {
            return Err(shape_err(
                "write",
                format!("{} bytes of {dtype:?} into {:?} {:?}", bytes.len(), self.dtype, self.shape),
            ));
        }
        gpu.queue.write_buffer(&self.buffer, self.offset, bytes);
        Ok(())
    }

    /// Reads the tensor back (a separate submission: for tests, export and inspection).
    pub async fn read_f32(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let rb = super::Readback::new(gpu, self.byte_size());
        let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        rb.copy_from(&mut encoder, self);
        gpu.queue.submit([encoder.finish()]);
        let bytes = rb.read(gpu).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// The binding resource for a bind group entry.
    pub(crate) fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.byte_size().next_multiple_of(4).max(4)),
        })
    }
}
