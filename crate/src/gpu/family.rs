//! Kernel families: the matmul kernels shaped for CPU implementations of WebGPU (register
//! tiles, no workgroup memory) or for GPUs (workgroup-memory tiles). A [`Gpu`](super::Gpu)
//! settles on one when it is made, from the adapter or from `WEBLORA_KERNELS`.

use crate::error::{Error, Result};

/// The family of matmul kernels a device runs (the mat-vec kernels are the same in both).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelFamily {
    /// `shaders/matmul.wgsl`: each invocation a 4×4 block from vec4 loads, no barriers: for
    /// lavapipe and SwiftShader, where workgroup memory and barriers cost more than they save.
    Cpu,
    /// `shaders/matmul_tiled.wgsl`: 64×64 tiles of C staged through workgroup memory.
    Tiled,
}

impl KernelFamily {
    pub fn name(self) -> &'static str {
        match self {
            KernelFamily::Cpu => "cpu",
            KernelFamily::Tiled => "tiled",
        }
    }

    /// The family for an adapter: [`KernelFamily::Cpu`] when it is a CPU implementation of
    /// WebGPU — its device type says so (lavapipe, SwiftShader, a browser's fallback adapter) or
    /// its name does (a browser's adapter info, e.g. `google swiftshader`) — otherwise
    /// [`KernelFamily::Tiled`].
    pub fn for_adapter(device_type: wgpu::DeviceType, name: &str) -> KernelFamily {
        let name = name.to_ascii_lowercase();
        let software = name.split(|c: char| !c.is_ascii_alphanumeric()).any(|word| word == "cpu")
            || ["swiftshader", "llvmpipe", "lavapipe"].iter().any(|s| name.contains(s));
        if device_type == wgpu::DeviceType::Cpu || software {
            KernelFamily::Cpu
        } else {
            KernelFamily::Tiled
        }
    }
}

/// How the kernel family is chosen: from the adapter (`auto`, the default) or forced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelChoice {
    #[default]
    Auto,
    Force(KernelFamily),
}

impl KernelChoice {
    /// The environment variable that chooses the family natively.
    pub const ENV: &'static str = "WEBLORA_KERNELS";

    /// From `auto`, `tiled` or `cpu`; `None` for anything else.
    pub fn from_name(name: &str) -> Option<KernelChoice> {
        match name {
            "auto" => Some(KernelChoice::Auto),
            "tiled" => Some(KernelChoice::Force(KernelFamily::Tiled)),
            "cpu" => Some(KernelChoice::Force(KernelFamily::Cpu)),
            _ => None,
        }
    }

    /// What [`KernelChoice::from_name`] takes, for messages.
    pub const NAMES: &'static str = "\"auto\", \"tiled\", \"cpu\"";

    /// From a value of `WEBLORA_KERNELS`.
    pub fn parse(value: &str) -> Result<KernelChoice> {
        Self::from_name(value)
            .ok_or_else(|| Error::Env { name: Self::ENV, detail: format!("{value:?} is not one of {}", Self::NAMES) })
    }

    /// From `WEBLORA_KERNELS`; `auto` when it is unset (and always in the browser).
    pub fn from_env() -> Result<KernelChoice> {
        match std::env::var(Self::ENV) {
            Ok(value) => Self::parse(&value),
            Err(std::env::VarError::NotPresent) => Ok(KernelChoice::Auto),
            Err(std::env::VarError::NotUnicode(v)) => Self::parse(&v.to_string_lossy()),
        }
    }

    /// The family this choice gives on an adapter of `device_type` named `name`.
    pub fn resolve(self, device_type: wgpu::DeviceType, name: &str) -> KernelFamily {
        match self {
            KernelChoice::Auto => KernelFamily::for_adapter(device_type, name),
            KernelChoice::Force(family) => family,
        }
    }
}

/// The browser's description of the adapter it would give (`GPUAdapter.info`: vendor,
/// architecture, device, description, the empty ones left out), e.g. `google swiftshader`.
/// wgpu reports only the description, which browsers usually leave empty.
#[cfg(target_arch = "wasm32")]
pub(crate) async fn browser_adapter_name() -> String {
    use wasm_bindgen::{JsCast, JsValue};
    let get = |v: &JsValue, key: &str| js_sys::Reflect::get(v, &key.into()).unwrap_or(JsValue::UNDEFINED);
    let gpu = get(&get(&js_sys::global(), "navigator"), "gpu");
    let Ok(request) = get(&gpu, "requestAdapter").dyn_into::<js_sys::Function>() else {
        return String::new();
    };
    let options = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&options, &"powerPreference".into(), &"high-performance".into());
    let Ok(promise) = request.call1(&gpu, &options).and_then(|p| p.dyn_into::<js_sys::Promise>()) else {
        return String::new();
    };
    let Ok(adapter) = wasm_bindgen_futures::JsFuture::from(promise).await else {
        return String::new();
    };
    let info = get(&adapter, "info");
    let parts = ["vendor", "architecture", "device", "description"].map(|key| get(&info, key).as_string());
    parts.into_iter().flatten().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::{KernelChoice, KernelFamily};
    use wgpu::DeviceType;

    #[test]
    fn choices_are_auto_tiled_or_cpu_and_anything_else_names_the_variable() {
        assert_eq!(KernelChoice::parse("auto").unwrap(), KernelChoice::Auto);
        assert_eq!(KernelChoice::parse("tiled").unwrap(), KernelChoice::Force(KernelFamily::Tiled));
        assert_eq!(KernelChoice::parse("cpu").unwrap(), KernelChoice::Force(KernelFamily::Cpu));
        let e = KernelChoice::parse("gpu").unwrap_err();
        assert_eq!(e.kind(), "env");
        assert_eq!(e.to_string(), "WEBLORA_KERNELS: \"gpu\" is not one of \"auto\", \"tiled\", \"cpu\"");
    }

    #[test]
    fn auto_picks_cpu_for_software_adapters_and_tiled_for_gpus() {
        let auto = |ty, name| KernelChoice::Auto.resolve(ty, name);
        assert_eq!(auto(DeviceType::Cpu, "llvmpipe (LLVM 15.0.7, 256 bits)"), KernelFamily::Cpu);
        assert_eq!(auto(DeviceType::Other, "google swiftshader"), KernelFamily::Cpu);
        assert_eq!(auto(DeviceType::Other, "SwiftShader Device (Subzero)"), KernelFamily::Cpu);
        assert_eq!(auto(DeviceType::Other, "Some CPU adapter"), KernelFamily::Cpu);
        assert_eq!(auto(DeviceType::DiscreteGpu, "NVIDIA H200"), KernelFamily::Tiled);
        assert_eq!(auto(DeviceType::IntegratedGpu, "Intel(R) UHD Graphics 620"), KernelFamily::Tiled);
        assert_eq!(auto(DeviceType::Other, "apple metal-3"), KernelFamily::Tiled);
        assert_eq!(auto(DeviceType::Other, ""), KernelFamily::Tiled);
        let forced = KernelChoice::Force(KernelFamily::Tiled);
        assert_eq!(forced.resolve(DeviceType::Cpu, "llvmpipe"), KernelFamily::Tiled);
    }
}
