//! Acquiring the wgpu device, natively and in the browser, with the adapter's real limits or
//! WebGPU's defaults, and settling its kernel family.

use std::sync::{Arc, Mutex};

use super::family::{KernelChoice, KernelFamily};
use super::kernels::KernelCache;
use crate::error::{Error, Result};

/// What the adapter is and what it offers, for `inspect` and benchmarks.
#[derive(Clone, Debug)]
pub struct GpuInfo {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub shader_f16: bool,
    pub subgroups: bool,
    /// Whether the device takes timestamp queries (the time of each kernel in benchmarks).
    pub timestamps: bool,
    pub max_storage_binding: u64,
    pub max_buffer: u64,
    /// The matmul kernels this device runs.
    pub kernels: KernelFamily,
    /// The most loop iterations one invocation may run, counted over all its loops, where the
    /// implementation ends loops past a count: lavapipe (llvmpipe) ends them after 65535, which
    /// leaves sums cut short. `None` elsewhere.
    pub loop_limit: Option<u64>,
}

impl std::fmt::Display for GpuInfo {
    /// `llvmpipe (LLVM 15.0.7, 256 bits) (Vulkan, Cpu), cpu kernels`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {}), {} kernels", self.name, self.backend, self.device_type, self.kernels.name())
    }
}

/// Lavapipe's count of loop iterations per invocation (Mesa's `LP_MAX_TGSI_LOOP_ITERATIONS`).
const LLVMPIPE_LOOP_LIMIT: u64 = 65535;

impl GpuInfo {
    /// The most bytes one tensor (or one part of a split tensor) may take: within both the
    /// storage binding and the buffer limit.
    pub fn max_tensor_bytes(&self) -> u64 {
        self.max_storage_binding.min(self.max_buffer)
    }
}

/// Which limits the device is opened with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceLimits {
    /// Every limit the adapter offers.
    #[default]
    Adapter,
    /// Only WebGPU's defaults (128 MiB storage bindings, 256 MiB buffers, 16 KiB workgroup
    /// storage, 256 invocations per workgroup): what many phones and integrated GPUs offer.
    WebgpuDefault,
    /// WebGPU's defaults with smaller storage bindings and buffers (bytes): a device that makes
    /// small models split their tensors, for tests.
    Smaller { max_storage_binding: u64, max_buffer: u64 },
}

impl DeviceLimits {
    /// The environment variable that chooses the limits natively.
    pub const ENV: &'static str = "WEBLORA_LIMITS";

    /// From a value of `WEBLORA_LIMITS`: `adapter` or `webgpu-default`.
    pub fn parse(value: &str) -> Result<DeviceLimits> {
        match value {
            "adapter" => Ok(DeviceLimits::Adapter),
            "webgpu-default" => Ok(DeviceLimits::WebgpuDefault),
            other => Err(Error::Env {
                name: Self::ENV,
                detail: format!("{other:?} is not one of \"adapter\", \"webgpu-default\""),
            }),
        }
    }

    /// From `WEBLORA_LIMITS`; the adapter's limits when it is unset (and always in the browser).
    pub fn from_env() -> Result<DeviceLimits> {
        match std::env::var(Self::ENV) {
            Ok(value) => Self::parse(&value),
            Err(std::env::VarError::NotPresent) => Ok(DeviceLimits::Adapter),
            Err(std::env::VarError::NotUnicode(v)) => Self::parse(&v.to_string_lossy()),
        }
    }

    fn resolve(self, adapter: &wgpu::Adapter) -> wgpu::Limits {
        match self {
            DeviceLimits::Adapter => adapter.limits(),
            DeviceLimits::WebgpuDefault => wgpu::Limits::default(),
            DeviceLimits::Smaller { max_storage_binding, max_buffer } => {
                let default = wgpu::Limits::default();
                wgpu::Limits {
                    max_storage_buffer_binding_size: max_storage_binding.min(default.max_storage_buffer_binding_size),
                    max_buffer_size: max_buffer.min(default.max_buffer_size),
                    ..default
                }
            }
        }
    }
}

/// How a [`Gpu`] is opened: its limits and its kernel family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuOptions {
    pub limits: DeviceLimits,
    pub kernels: KernelChoice,
}

impl GpuOptions {
    /// From `WEBLORA_LIMITS` and `WEBLORA_KERNELS` (see [`DeviceLimits::from_env`] and
    /// [`KernelChoice::from_env`]).
    pub fn from_env() -> Result<GpuOptions> {
        Ok(GpuOptions { limits: DeviceLimits::from_env()?, kernels: KernelChoice::from_env()? })
    }
}

/// The device, its queue and the pipelines built on it. Cheap to clone.
#[derive(Clone)]
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: Arc<GpuInfo>,
    pub(crate) kernels: Arc<KernelCache>,
    /// The first error the device reported (a lost device overrides any other), surfaced at
    /// the next wait or readback instead of wgpu's default panic (which would kill a browser
    /// worker).
    errors: Arc<Mutex<Option<Error>>>,
    /// Answered once, when the device is lost; taken by the one caller that waits for it.
    lost_signal: Arc<Mutex<Option<futures_channel::oneshot::Receiver<String>>>>,
}

impl Gpu {
    /// Finds a GPU and opens it with the limits and kernels `WEBLORA_LIMITS` and
    /// `WEBLORA_KERNELS` ask for (see [`GpuOptions::from_env`]).
    pub async fn new() -> Result<Gpu> {
        Self::with_options(GpuOptions::from_env()?).await
    }

    /// Finds a GPU and opens it with `options.limits`, plus `shader-f16`, `subgroups` and
    /// `timestamp-query` where offered, and settles its kernel family by `options.kernels`. Natively the backend may be
    /// chosen with `WGPU_BACKEND` (vulkan, metal, dx12); by default the primary backends are
    /// tried, never GL.
    pub async fn with_options(options: GpuOptions) -> Result<Gpu> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if std::env::var_os("WGPU_BACKEND").is_none() {
            desc.backends =
                if cfg!(target_arch = "wasm32") { wgpu::Backends::BROWSER_WEBGPU } else { wgpu::Backends::PRIMARY };
        }
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::NoGpu(e.to_string()))?;
        let offered = adapter.features();
        let features =
            offered & (wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY);
        let limits = options.limits.resolve(&adapter);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("weblora"),
                required_features: features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::NoGpu(e.to_string()))?;
        let a = adapter.get_info();
        #[cfg(target_arch = "wasm32")]
        let name = super::family::browser_adapter_name().await;
        #[cfg(not(target_arch = "wasm32"))]
        let name = a.name;
        let info = GpuInfo {
            kernels: options.kernels.resolve(a.device_type, &name),
            loop_limit: name.to_ascii_lowercase().contains("llvmpipe").then_some(LLVMPIPE_LOOP_LIMIT),
            name,
            backend: format!("{:?}", a.backend),
            device_type: format!("{:?}", a.device_type),
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            max_storage_binding: limits.max_storage_buffer_binding_size as u64,
            max_buffer: limits.max_buffer_size,
        };
        let errors: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| fault_of(&e));
        }));
        let sink = errors.clone();
        let (tell, told) = futures_channel::oneshot::channel();
        let tell = Mutex::new(Some(tell));
        device.set_device_lost_callback(move |reason, message| {
            let e = lost(reason, &message);
            if let Some(tell) = tell.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tell.send(e.to_string());
            }
            *sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        });
        // Subgroup reductions only in the GPU-class family (a CPU implementation's subgroups are
        // its SIMD lanes, where the workgroup-memory reductions serve as well), and not yet in
        // browsers: their WGSL wants `enable subgroups;`, which no browser test can check here
        // (SwiftShader offers no subgroups), so a browser keeps the reductions every GPU runs.
        let subgroups =
            info.subgroups && info.kernels == super::KernelFamily::Tiled && cfg!(not(target_arch = "wasm32"));
        let kernels = KernelCache::new(subgroups);
        Ok(Gpu {
            device,
            queue,
            info: Arc::new(info),
            kernels: Arc::new(kernels),
            errors,
            lost_signal: Arc::new(Mutex::new(Some(told))),
        })
    }

    /// Blocks until all submitted work is done (native only; the browser has no blocking wait).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| self.fault_or(Error::Gpu(format!("waiting for the GPU: {e}"))))?;
        self.take_error()
    }

    /// Hands the queue's pending buffer writes to the GPU, so that their host staging copies
    /// are freed as the GPU takes them instead of piling up until the next submission (a
    /// loader that never submitted would hold a host copy of every weight).
    pub fn flush_writes(&self) {
        self.queue.submit([]);
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::Poll);
    }

    /// The first error the device reported since the last call, if any; a lost device is
    /// reported again at every call, since nothing can run on it any more.
    pub fn take_error(&self) -> Result<()> {
        let mut slot = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        match slot.take() {
            Some(Error::DeviceLost(m)) => {
                *slot = Some(Error::DeviceLost(m.clone()));
                Err(Error::DeviceLost(m))
            }
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The error the device reported, in place of `other` (a failed wait or mapping is most
    /// often the symptom of a lost device or of memory that ran out).
    pub(crate) fn fault_or(&self, other: Error) -> Error {
        self.take_error().err().unwrap_or(other)
    }

    /// Waits until the device is lost and returns why (the crate's message); `None` for every
    /// caller but the first, and when the device is dropped without being lost.
    pub async fn lost(&self) -> Option<String> {
        let told = self.lost_signal.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        told.await.ok()
    }

    /// Ends the device as a lost one does (a driver reset, a crashed GPU process): for tests
    /// of what a run does then.
    pub fn destroy(&self) {
        self.device.destroy();
    }

    /// Submits a program as one command buffer, with an optional readback copy at its end.
    pub fn submit(&self, program: &super::Program, readback: Option<(&super::Readback, &super::Tensor)>) {
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        program.record(&mut encoder);
        if let Some((rb, t)) = readback {
            rb.copy_from(&mut encoder, t);
        }
        self.queue.submit([encoder.finish()]);
    }
}

/// A device error as the crate's error: out of memory kept apart from the rest.
fn fault_of(e: &wgpu::Error) -> Error {
    match e {
        wgpu::Error::OutOfMemory { .. } => Error::OutOfMemory(format!(
            "{e}; a smaller batch or sequence length, `recompute`, or a memory budget (which plans the run to fit) needs less"
        )),
        _ => Error::Gpu(e.to_string()),
    }
}

/// A lost device as the crate's error, with why when the implementation says.
fn lost(reason: wgpu::DeviceLostReason, message: &str) -> Error {
    let why = match reason {
        wgpu::DeviceLostReason::Destroyed => "destroyed",
        _ => "lost by the driver or the browser",
    };
    let message = if message.is_empty() { String::new() } else { format!(" ({message})") };
    Error::DeviceLost(format!("{why}{message}; open the GPU again and resume from the last checkpoint"))
}

#[cfg(test)]
mod tests {
    use super::DeviceLimits;

    #[test]
    fn out_of_memory_is_its_own_kind_and_says_what_needs_less() {
        let source: wgpu::ErrorSource = Box::new(std::io::Error::other("no room"));
        let e = super::fault_of(&wgpu::Error::OutOfMemory { source });
        assert_eq!(e.kind(), "out-of-memory");
        assert!(e.to_string().starts_with("the GPU is out of memory: "), "{e}");
        assert!(e.to_string().contains("recompute"), "{e}");
        let source: wgpu::ErrorSource = Box::new(std::io::Error::other("bad"));
        let e = super::fault_of(&wgpu::Error::Validation { source, description: "bad binding".into() });
        assert_eq!(e.kind(), "gpu");
    }

    #[test]
    fn limits_are_adapter_or_webgpu_default_and_anything_else_names_the_variable() {
        assert_eq!(DeviceLimits::parse("webgpu-default").unwrap(), DeviceLimits::WebgpuDefault);
        assert_eq!(DeviceLimits::parse("adapter").unwrap(), DeviceLimits::Adapter);
        let e = DeviceLimits::parse("webgpu").unwrap_err();
        assert_eq!(e.kind(), "env");
        assert!(e.to_string().starts_with("WEBLORA_LIMITS: \"webgpu\" is not one of"), "{e}");
    }
}
