//! Reading the PyTorch fixtures of `tests/fixtures/` (whole files in memory: they are tiny).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use weblora::gpu::Gpu;
use weblora::lora::Lora;
use weblora::model::{Model, ModelConfig};

/// A folder under `tests/fixtures/`.
pub fn fixture_dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(rel)
}

/// A tensor of a safetensors file as f32 (f32 or i64 sources), with its shape.
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub ints: Vec<i64>,
}

/// Every tensor of a safetensors file, by name.
pub fn read_safetensors(path: &Path) -> HashMap<String, HostTensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let (data, ints) = match view.dtype() {
            Dtype::F32 => (bytemuck::pod_collect_to_vec::<u8, f32>(raw), vec![]),
            Dtype::I64 => {
                let ints: Vec<i64> = bytemuck::pod_collect_to_vec(raw);
                (ints.iter().map(|&v| v as f32).collect(), ints)
            }
            other => panic!("{name}: dtype {other:?} in a fixture"),
        };
        out.insert(name.to_string(), HostTensor { shape: view.shape().to_vec(), data, ints });
    }
    out
}

/// The base model of a fixture folder (config.json + model.safetensors) on the GPU, through the
/// library's streaming Hugging Face loader.
pub fn load_model(gpu: &Gpu, dir: &Path) -> Model {
    weblora::model::load::load_hf_folder(gpu, dir).unwrap()
}

/// The PEFT adapter in `dir` (adapter_config.json + adapter_model.safetensors) on the GPU,
/// through the library's reader.
pub fn load_adapter(gpu: &Gpu, model: &ModelConfig, dir: &Path) -> Lora {
    weblora::lora::peft::read_peft_folder(gpu, model, dir).unwrap()
}
