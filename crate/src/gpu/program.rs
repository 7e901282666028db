//! Programs: GPU work recorded once for a shape (pipelines, bind groups and uniforms built up
//! front) and replayed into a command encoder as often as needed.

use std::sync::Arc;

use super::{DType, Gpu, Kernel, Tensor, Timer};
use crate::error::{shape_err, Error, Result};

/// A tensor bound at a WGSL binding number (the `Params` uniform is always binding 0).
pub type Binding<'a> = (u32, &'a Tensor);

enum Command {
    Dispatch { kernel: Kernel, pipeline: Arc<wgpu::ComputePipeline>, bind_group: wgpu::BindGroup, groups: [u32; 3] },
    Copy { src: Tensor, dst: Tensor },
    Clear(Tensor),
}

/// An ordered list of dispatches, copies and clears.
pub struct Program {
    gpu: Gpu,
    commands: Vec<Command>,
    /// Working memory for a step between two dispatches (split-K partial products), shared by
    /// all of them: the dispatches run in order.
    scratch: Option<Tensor>,
    /// Working memory of the same kind for a product over one part of a weight split by output
    /// rows, apart from `scratch`, which that product's own matmul may use.
    part_scratch: Option<Tensor>,
}

/// A view of `shape` f32s at the start of the buffer in `slot`, which is replaced by a large
/// enough one when it is missing or smaller.
fn grown(gpu: &Gpu, slot: &mut Option<Tensor>, label: &str, shape: &[usize]) -> Result<Tensor> {
    let numel: usize = shape.iter().product();
    if slot.as_ref().is_none_or(|s| s.numel() < numel) {
        *slot = Some(Tensor::zeros(gpu, label, &[numel.max(1)], DType::F32)?);
    }
    slot.as_ref().expect("allocated above").view(0, shape)
}

/// The most workgroups in one grid dimension (WebGPU's maxComputeWorkgroupsPerDimension).
const MAX_GROUPS: u32 = 65535;

impl Program {
    pub fn new(gpu: &Gpu) -> Program {
        Program { gpu: gpu.clone(), commands: Vec::new(), scratch: None, part_scratch: None }
    }

    /// A program whose scratch memories start as `scratch` and `part_scratch` (a plan's,
    /// counted in its memory plan).
    pub fn with_scratch(gpu: &Gpu, scratch: Tensor, part_scratch: Option<Tensor>) -> Program {
        Program { gpu: gpu.clone(), commands: Vec::new(), scratch: Some(scratch), part_scratch }
    }

    /// `numel` f32s of the program's scratch memory, for a dispatch that hands its result to
    /// the next one only. A larger request replaces the buffer; dispatches recorded earlier keep
    /// the one they bound.
    pub fn scratch(&mut self, numel: usize) -> Result<Tensor> {
        grown(&self.gpu, &mut self.scratch, "scratch", &[numel])
    }

    /// A (rows, cols) f32 view of the program's scratch for products over a part of a split
    /// weight ([`Program::scratch`]'s rules, in a buffer of its own).
    pub fn part_scratch(&mut self, rows: usize, cols: usize) -> Result<Tensor> {
        grown(&self.gpu, &mut self.part_scratch, "part_scratch", &[rows, cols])
    }

    /// The device the program records for.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Appends a dispatch of `kernel` with `params` as its uniform and `bindings` as its
    /// storage buffers, over `groups` workgroups.
    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        kernel: Kernel,
        params: &P,
        bindings: &[Binding],
        groups: [u32; 3],
    ) -> Result<()> {
        self.dispatch_with(kernel, 0, params, bindings, groups)
    }

    /// [`Program::dispatch`] of a kernel that takes a pipeline constant ([`Kernel::constant`]),
    /// with `value` for it: each value is a pipeline of its own.
    pub fn dispatch_with<P: bytemuck::Pod>(
        &mut self,
        kernel: Kernel,
        value: u32,
        params: &P,
        bindings: &[Binding],
        groups: [u32; 3],
    ) -> Result<()> {
        if kernel.constant().is_some() != (value != 0) {
            return Err(Error::Internal(format!("{kernel:?} dispatched with pipeline constant {value}")));
        }
        let max = self.gpu.info.max_storage_binding;
        for (slot, t) in bindings {
            if t.byte_size() > max {
                return Err(shape_err(
                    "dispatch",
                    format!(
                        "{kernel:?} binding {slot}: {} bytes exceed the device's binding limit {max}",
                        t.byte_size()
                    ),
                ));
            }
        }
        if groups.iter().any(|&g| g > MAX_GROUPS) {
            return Err(shape_err("dispatch", format!("{kernel:?}: grid {groups:?} too large")));
        }
        let device = &self.gpu.device;
        let pipeline = self.gpu.kernels.pipeline(device, kernel, value);
        let mut bytes = bytemuck::bytes_of(params).to_vec();
        bytes.resize(bytes.len().next_multiple_of(16), 0);
        // Written through the queue rather than mapped at creation: mapping panics inside wgpu
        // on a lost device, a write is an error the device reports.
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: bytes.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.gpu.queue.write_buffer(&uniform, 0, &bytes);
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        entries.extend(bindings.iter().map(|(slot, t)| wgpu::BindGroupEntry { binding: *slot, resource: t.binding() }));
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.commands.push(Command::Dispatch { kernel, pipeline, bind_group, groups });
        Ok(())
    }

    /// Appends a buffer copy of all of `src` into `dst` (same byte size).
    pub fn copy(&mut self, src: &Tensor, dst: &Tensor) -> Result<()> {
        if src.byte_size() != dst.byte_size() {
            return Err(shape_err("copy", format!("{:?} into {:?}", src.shape(), dst.shape())));
        }
        self.commands.push(Command::Copy { src: src.clone(), dst: dst.clone() });
        Ok(())
    }

    /// Appends a fill of `t` with zeros.
    pub fn clear(&mut self, t: &Tensor) {
        self.commands.push(Command::Clear(t.clone()));
    }

    /// How many dispatches the program records.
    pub fn dispatches(&self) -> usize {
        self.commands.iter().filter(|c| matches!(c, Command::Dispatch { .. })).count()
    }

    /// Records the program into `encoder`; consecutive dispatches share one compute pass.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.record_with(encoder, None);
    }

    /// Records the program into `encoder` with each dispatch in a compute pass of its own that
    /// `timer` timestamps (dispatches past its capacity run untimed).
    pub fn record_timed(&self, encoder: &mut wgpu::CommandEncoder, timer: &mut Timer) {
        self.record_with(encoder, Some(timer));
    }

    fn record_with(&self, encoder: &mut wgpu::CommandEncoder, mut timer: Option<&mut Timer>) {
        let mut i = 0;
        while i < self.commands.len() {
            match &self.commands[i] {
                Command::Dispatch { .. } => {
                    let timed = timer.is_some();
                    let writes = match (&self.commands[i], timer.as_deref_mut()) {
                        (Command::Dispatch { kernel, .. }, Some(t)) => t.next(*kernel),
                        _ => None,
                    };
                    let mut pass = encoder
                        .begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: writes });
                    while let Some(Command::Dispatch { pipeline, bind_group, groups, .. }) = self.commands.get(i) {
                        pass.set_pipeline(pipeline);
                        pass.set_bind_group(0, bind_group, &[]);
                        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                        i += 1;
                        if timed {
                            break;
                        }
                    }
                }
                Command::Copy { src, dst } => {
                    encoder.copy_buffer_to_buffer(
                        src.buffer(),
                        src.offset(),
                        dst.buffer(),
                        dst.offset(),
                        src.byte_size(),
                    );
                    i += 1;
                }
                Command::Clear(t) => {
                    encoder.clear_buffer(t.buffer(), t.offset(), Some(t.byte_size().next_multiple_of(4)));
                    i += 1;
                }
            }
        }
    }
}

/// A grid of `groups` workgroups folded into two dimensions under the per-dimension limit.
/// Kernels recover the flat index as `gid.x + gid.y · num_workgroups.x · WG`.
pub fn grid(groups: u32) -> [u32; 3] {
    if groups <= MAX_GROUPS {
        [groups.max(1), 1, 1]
    } else {
        [MAX_GROUPS, groups.div_ceil(MAX_GROUPS), 1]
    }
}
