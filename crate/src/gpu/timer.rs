//! The time of each dispatch of recorded programs, from GPU timestamp queries where the device
//! offers them: what a step spends in each kernel, for benchmarks. A timed recording gives
//! every dispatch a compute pass of its own (a timestamp at its start and end), so it measures
//! the kernels, not the step as it normally runs.

use super::readback::read_mapped;
use super::{Gpu, Kernel};
use crate::error::{Error, Result};

/// One kernel's share of a timed recording.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct KernelTime {
    /// The kernel, as [`Kernel`]'s name (`MatmulNt`, `AttentionForward`, …).
    pub kernel: String,
    pub seconds: f64,
    pub dispatches: usize,
    /// Whether the kernel is a matrix product ([`Kernel::is_matmul`]).
    pub matmul: bool,
}

/// Timestamp queries for up to `capacity` dispatches of one submission.
pub struct Timer {
    sets: Vec<wgpu::QuerySet>,
    /// The kernel of each timed dispatch, in order.
    kernels: Vec<Kernel>,
    capacity: usize,
    resolved: wgpu::Buffer,
    staging: wgpu::Buffer,
}

/// Queries per query set (wgpu's most): two per dispatch.
const PER_SET: usize = wgpu::QUERY_SET_MAX_QUERIES as usize;

impl Timer {
    /// A timer for `capacity` dispatches; an error when the device offers no timestamp queries.
    pub fn new(gpu: &Gpu, capacity: usize) -> Result<Timer> {
        if !gpu.info.timestamps {
            return Err(Error::Gpu(format!("{} offers no timestamp queries", gpu.info.name)));
        }
        let queries = 2 * capacity.max(1);
        let sets = (0..queries.div_ceil(PER_SET))
            .map(|i| {
                let count = (queries - i * PER_SET).min(PER_SET) as u32;
                gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("kernel times"),
                    ty: wgpu::QueryType::Timestamp,
                    count,
                })
            })
            .collect();
        let bytes = (queries * wgpu::QUERY_SIZE as usize) as u64;
        let buffer = |usage, label| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        Ok(Timer {
            sets,
            kernels: Vec::with_capacity(capacity),
            capacity,
            resolved: buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC, "timestamps"),
            staging: buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, "timestamps readback"),
        })
    }

    /// The timestamp writes of the next dispatch, of `kernel`; `None` once the timer is full.
    pub(crate) fn next(&mut self, kernel: Kernel) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        let i = self.kernels.len();
        if i == self.capacity {
            return None;
        }
        self.kernels.push(kernel);
        let q = 2 * i;
        Some(wgpu::ComputePassTimestampWrites {
            query_set: &self.sets[q / PER_SET],
            beginning_of_pass_write_index: Some((q % PER_SET) as u32),
            end_of_pass_write_index: Some((q % PER_SET + 1) as u32),
        })
    }

    /// Records the copy of the timestamps to the host, after the timed work.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        let queries = 2 * self.kernels.len();
        for (i, set) in self.sets.iter().enumerate() {
            let used = queries.saturating_sub(i * PER_SET).min(PER_SET);
            if used > 0 {
                let offset = (i * PER_SET * wgpu::QUERY_SIZE as usize) as u64;
                encoder.resolve_query_set(set, 0..used as u32, &self.resolved, offset);
            }
        }
        let bytes = (queries * wgpu::QUERY_SIZE as usize) as u64;
        if bytes > 0 {
            encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.staging, 0, bytes);
        }
    }

    /// After the submission: the time of each kernel, summed over its dispatches, longest first.
    pub async fn read(&self, gpu: &Gpu) -> Result<Vec<KernelTime>> {
        let n = self.kernels.len();
        if n == 0 {
            return Ok(vec![]);
        }
        let bytes = (2 * n * wgpu::QUERY_SIZE as usize) as u64;
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&read_mapped(gpu, &self.staging, bytes).await?);
        let ns_per_tick = gpu.queue.get_timestamp_period() as f64;
        Ok(by_kernel(&self.kernels, &ticks, ns_per_tick))
    }
}

/// Sums each dispatch's end − start (`ticks` in pairs) by kernel, longest total first.
fn by_kernel(kernels: &[Kernel], ticks: &[u64], ns_per_tick: f64) -> Vec<KernelTime> {
    let mut times: Vec<KernelTime> = Vec::new();
    for (kernel, pair) in kernels.iter().zip(ticks.chunks_exact(2)) {
        let seconds = pair[1].saturating_sub(pair[0]) as f64 * ns_per_tick * 1e-9;
        let name = format!("{kernel:?}");
        match times.iter_mut().find(|t| t.kernel == name) {
            Some(t) => {
                t.seconds += seconds;
                t.dispatches += 1;
            }
            None => times.push(KernelTime { kernel: name, seconds, dispatches: 1, matmul: kernel.is_matmul() }),
        }
    }
    times.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatches_are_summed_by_kernel_longest_first() {
        let kernels = [Kernel::MatmulNt, Kernel::RmsnormForward, Kernel::MatmulNt];
        let ticks = [10, 30, 30, 35, 40, 100];
        let t = by_kernel(&kernels, &ticks, 2.0);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].kernel.as_str(), t[0].dispatches, t[0].matmul), ("MatmulNt", 2, true));
        assert!((t[0].seconds - 160e-9).abs() < 1e-15, "{}", t[0].seconds);
        assert_eq!((t[1].kernel.as_str(), t[1].dispatches, t[1].matmul), ("RmsnormForward", 1, false));
        assert!((t[1].seconds - 10e-9).abs() < 1e-15, "{}", t[1].seconds);
    }
}
