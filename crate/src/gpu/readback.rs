//! Reading bytes back from the GPU: the one helper used natively and in the browser.

use super::{Gpu, Tensor};
use crate::error::{Error, Result};

/// A mappable staging buffer. Record [`Readback::copy_from`] into the step's encoder, submit,
/// then await [`Readback::read`]; natively the device is polled, in the browser the event
/// loop completes the mapping.
pub struct Readback {
    staging: wgpu::Buffer,
    size: u64,
}

impl Readback {
    pub fn new(gpu: &Gpu, size: u64) -> Readback {
        let size = size.next_multiple_of(4).max(4);
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Readback { staging, size }
    }

    pub fn copy_from(&self, encoder: &mut wgpu::CommandEncoder, t: &Tensor) {
        let n = t.byte_size().next_multiple_of(4).min(self.size);
        encoder.copy_buffer_to_buffer(t.buffer(), t.offset(), &self.staging, 0, n);
    }

    pub async fn read(&self, gpu: &Gpu) -> Result<Vec<u8>> {
        read_mapped(gpu, &self.staging, self.size).await
    }
}

/// The first `bytes` of `staging` (a MAP_READ buffer) once the submitted work is done; a lost
/// device or another error it reported comes back as that error.
pub(crate) async fn read_mapped(gpu: &Gpu, staging: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
    let (tx, rx) = futures_channel::oneshot::channel();
    staging.map_async(wgpu::MapMode::Read, ..bytes, move |r| {
        let _ = tx.send(r);
    });
    #[cfg(not(target_arch = "wasm32"))]
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| gpu.fault_or(Error::Gpu(format!("waiting for the GPU: {e}"))))?;
    rx.await
        .map_err(|_| gpu.fault_or(Error::Gpu("readback was dropped".into())))?
        .map_err(|e| gpu.fault_or(Error::Gpu(format!("mapping the readback buffer: {e}"))))?;
    let out = {
        let view =
            staging.get_mapped_range(..bytes).map_err(|e| Error::Gpu(format!("reading the readback buffer: {e}")))?;
        view.to_vec()
    };
    staging.unmap();
    gpu.take_error()?;
    Ok(out)
}
