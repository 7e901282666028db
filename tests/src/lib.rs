//! Shared helpers of the cross-cutting tests: one GPU per test binary, seeded random data,
//! tolerance presets, and the CPU references of every kernel (in [`cpu`]).

// The CPU references take the same arguments as the kernels they check (outputs, inputs,
// weights, sizes), so many take more than clippy's seven.
#![allow(clippy::too_many_arguments)]

pub mod cpu;
pub mod cpu_model;
pub mod fixture;
pub mod model_file;
pub mod smollm2;
pub mod tiny;

use std::sync::OnceLock;

use weblora::gpu::{DeviceLimits, Gpu, GpuOptions, KernelChoice, KernelFamily, Tensor};

/// The options of the tests' GPUs: only WebGPU's default limits (the floor the engine is built
/// for) unless `WEBLORA_LIMITS` asks for others, and the kernels `WEBLORA_KERNELS` asks for.
fn test_options(kernels: KernelChoice) -> GpuOptions {
    let limits = match std::env::var_os(DeviceLimits::ENV) {
        Some(_) => DeviceLimits::from_env().expect("WEBLORA_LIMITS"),
        None => DeviceLimits::WebgpuDefault,
    };
    GpuOptions { limits, kernels }
}

fn open(options: GpuOptions) -> Gpu {
    pollster::block_on(Gpu::with_options(options)).expect("a wgpu adapter (install mesa-vulkan-drivers for lavapipe)")
}

/// The test binary's GPU (lavapipe in CI), opened once (see [`test_options`]).
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| open(test_options(KernelChoice::from_env().expect("WEBLORA_KERNELS"))))
}

/// A GPU that runs the kernel family `family` whatever the adapter is, opened once per family.
pub fn family_gpu(family: KernelFamily) -> &'static Gpu {
    static GPUS: [OnceLock<Gpu>; 2] = [OnceLock::new(), OnceLock::new()];
    let slot = match family {
        KernelFamily::Cpu => 0,
        KernelFamily::Tiled => 1,
    };
    GPUS[slot].get_or_init(|| open(test_options(KernelChoice::Force(family))))
}

/// A GPU of the test's own, opened as [`gpu`] is, for a test that ends it.
pub fn private_gpu() -> Gpu {
    open(test_options(KernelChoice::from_env().expect("WEBLORA_KERNELS")))
}

/// Reads a tensor of [`gpu`] back to the host.
pub fn read(t: &Tensor) -> Vec<f32> {
    read_from(gpu(), t)
}

/// Reads a tensor of `g` back to the host.
pub fn read_from(g: &Gpu, t: &Tensor) -> Vec<f32> {
    pollster::block_on(t.read_f32(g)).expect("readback")
}

/// The library's seeded generator (SplitMix64), with the draws test data needs.
pub struct Rng(weblora::rng::Rng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(weblora::rng::Rng::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform() * scale).collect()
    }

    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % n as u64) as u32
    }
}

/// |got − want| ≤ atol + rtol·|want|, element-wise.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub atol: f32,
    pub rtol: f32,
}

/// f32 kernels against f64 references: the rounding of a few hundred f32 additions.
pub const F32: Tolerance = Tolerance { atol: 1e-5, rtol: 1e-4 };
/// Long reductions (dot products of thousands of terms, softmax over a vocabulary).
pub const F32_LONG: Tolerance = Tolerance { atol: 1e-4, rtol: 1e-3 };

/// Panics with the first offending index, got and expected, and the worst error.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: Tolerance) {
    assert_eq!(got.len(), want.len(), "{what}: length {} vs expected {}", got.len(), want.len());
    let mut worst = (0usize, 0f32);
    let mut bad = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let ok = err <= tol.atol + tol.rtol * w.abs();
        if !ok && bad.is_none() || g.is_nan() != w.is_nan() {
            bad.get_or_insert(i);
        }
        if err > worst.1 {
            worst = (i, err);
        }
    }
    if let Some(i) = bad {
        panic!(
            "{what}: index {i}: got {} expected {} (worst |err| {} at {}; tolerance {tol:?})",
            got[i], want[i], worst.1, worst.0
        );
    }
}

/// Relative L2 error ‖got − want‖ / ‖want‖.
pub fn rel_l2(got: &[f32], want: &[f32]) -> f32 {
    let num: f64 = got.iter().zip(want).map(|(g, w)| ((g - w) as f64).powi(2)).sum();
    let den: f64 = want.iter().map(|w| (*w as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt() as f32
}
