//! The kernel registry: a closed set of WGSL entry points, each compiled once per device.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::io::GgmlType;

/// One WGSL source file of `shaders/`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Shader {
    Embedding,
    Rmsnorm,
    Matmul,
    MatmulTiled,
    MatmulQuant,
    MatmulQuantTiled,
    Rope,
    Attention,
    AttentionTiled,
    Swiglu,
    Elementwise,
    CrossEntropy,
    Optimizer,
    Peak,
    Dora,
}

impl Shader {
    /// The module's WGSL; with `subgroups`, the row reductions of RMSNorm and cross-entropy use
    /// subgroup operations (`shaders/reduce_subgroup.wgsl`) instead of workgroup memory alone.
    fn source(self, subgroups: bool) -> &'static str {
        match self {
            Shader::Embedding => include_str!("../../../shaders/embedding.wgsl"),
            Shader::Rmsnorm if subgroups => {
                concat!(
                    include_str!("../../../shaders/reduce_subgroup.wgsl"),
                    include_str!("../../../shaders/rmsnorm.wgsl")
                )
            }
            Shader::Rmsnorm => {
                concat!(include_str!("../../../shaders/reduce.wgsl"), include_str!("../../../shaders/rmsnorm.wgsl"))
            }
            Shader::Matmul => include_str!("../../../shaders/matmul.wgsl"),
            Shader::MatmulTiled => include_str!("../../../shaders/matmul_tiled.wgsl"),
            Shader::MatmulQuant => include_str!("../../../shaders/matmul_quant.wgsl"),
            // The tiled products use the register-tiled file's bindings and dequantization.
            Shader::MatmulQuantTiled => concat!(
                include_str!("../../../shaders/matmul_quant.wgsl"),
                include_str!("../../../shaders/matmul_quant_tiled.wgsl")
            ),
            Shader::Rope => include_str!("../../../shaders/rope.wgsl"),
            Shader::Attention => include_str!("../../../shaders/attention.wgsl"),
            // The tiled family's attention uses the other file's bindings and helpers.
            Shader::AttentionTiled => concat!(
                include_str!("../../../shaders/attention.wgsl"),
                include_str!("../../../shaders/attention_tiled.wgsl")
            ),
            Shader::Swiglu => include_str!("../../../shaders/swiglu.wgsl"),
            Shader::Elementwise => include_str!("../../../shaders/elementwise.wgsl"),
            Shader::CrossEntropy if subgroups => concat!(
                include_str!("../../../shaders/reduce_subgroup.wgsl"),
                include_str!("../../../shaders/cross_entropy.wgsl")
            ),
            Shader::CrossEntropy => {
                concat!(
                    include_str!("../../../shaders/reduce.wgsl"),
                    include_str!("../../../shaders/cross_entropy.wgsl")
                )
            }
            Shader::Optimizer => include_str!("../../../shaders/optimizer.wgsl"),
            Shader::Peak => include_str!("../../../shaders/peak.wgsl"),
            Shader::Dora => include_str!("../../../shaders/dora.wgsl"),
        }
    }
}

/// Every compute entry point the engine dispatches. The pipeline cache is keyed by this enum
/// alone: sizes and floats travel in each dispatch's `Params` uniform, never in the key.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Kernel {
    EmbeddingForward,
    RmsnormForward,
    RmsnormBackward,
    MatmulNt,
    MatmulNn,
    MatmulTn,
    MatvecNt,
    MatmulNtTiled,
    MatmulNnTiled,
    MatmulTnTiled,
    MatmulReduce,
    /// A kernel of `shaders/matmul_quant.wgsl` for a weight kept in GGML type `.1`.
    Quant(QuantOp, GgmlType),
    RopeForward,
    RopeBackward,
    AttentionForward,
    AttentionBackwardDq,
    AttentionBackwardDkv,
    AttentionDkvReduce,
    AttentionForwardTiled,
    AttentionBackwardDqTiled,
    AttentionBackwardDkvTiled,
    AttentionDecode,
    KvAppend,
    SwigluForward,
    SwigluBackward,
    AddInplace,
    AddBias,
    Dropout,
    CopyColumns,
    CrossEntropyForward,
    CrossEntropyBackward,
    LossSum,
    GradSumsqPartial,
    GradNormFinalize,
    Adamw,
    FmaPeak,
    RowSumsq,
    DoraNorm,
    DoraMagnitude,
    DoraForward,
    DoraScaleDy,
    DoraDmag,
    DoraScaleRows,
}

impl Kernel {
    /// Whether this is a matrix product (of any weight type), as benchmarks count them.
    pub fn is_matmul(self) -> bool {
        use Kernel::*;
        match self {
            MatmulNt | MatmulNn | MatmulTn | MatvecNt | MatmulNtTiled | MatmulNnTiled | MatmulTnTiled
            | MatmulReduce => true,
            Quant(op, _) => op != QuantOp::Gather,
            _ => false,
        }
    }

    /// The pipeline-overridable constant the kernel's entry point takes, if any: the attention
    /// kernels' head dim in vec4s (`HD4`), so that their loops over it have a fixed count, which
    /// a GPU's compiler unrolls, keeping each invocation's rows in registers.
    pub fn constant(self) -> Option<&'static str> {
        use Kernel::*;
        match self {
            AttentionForward
            | AttentionBackwardDq
            | AttentionBackwardDkv
            | AttentionDecode
            | AttentionForwardTiled
            | AttentionBackwardDqTiled
            | AttentionBackwardDkvTiled => Some("HD4"),
            _ => None,
        }
    }

    fn shader(self) -> Shader {
        use Kernel::*;
        match self {
            EmbeddingForward => Shader::Embedding,
            RmsnormForward | RmsnormBackward => Shader::Rmsnorm,
            MatmulNt | MatmulNn | MatmulTn | MatvecNt => Shader::Matmul,
            MatmulNtTiled | MatmulNnTiled | MatmulTnTiled | MatmulReduce => Shader::MatmulTiled,
            Quant(QuantOp::MatmulNtTiled | QuantOp::MatmulNnTiled, _) => Shader::MatmulQuantTiled,
            Quant(..) => Shader::MatmulQuant,
            RopeForward | RopeBackward => Shader::Rope,
            AttentionForward | AttentionBackwardDq | AttentionBackwardDkv | AttentionDkvReduce | AttentionDecode
            | KvAppend => Shader::Attention,
            AttentionForwardTiled | AttentionBackwardDqTiled | AttentionBackwardDkvTiled => Shader::AttentionTiled,
            SwigluForward | SwigluBackward => Shader::Swiglu,
            AddInplace | AddBias | Dropout | CopyColumns => Shader::Elementwise,
            CrossEntropyForward | CrossEntropyBackward => Shader::CrossEntropy,
            LossSum | GradSumsqPartial | GradNormFinalize | Adamw => Shader::Optimizer,
            FmaPeak => Shader::Peak,
            RowSumsq | DoraNorm | DoraMagnitude | DoraForward | DoraScaleDy | DoraDmag | DoraScaleRows => Shader::Dora,
        }
    }

    fn entry_point(self) -> Cow<'static, str> {
        use Kernel::*;
        Cow::Borrowed(match self {
            EmbeddingForward => "embedding_forward",
            RmsnormForward => "rmsnorm_forward",
            RmsnormBackward => "rmsnorm_backward",
            MatmulNt => "matmul_nt",
            MatmulNn => "matmul_nn",
            MatmulTn => "matmul_tn",
            MatvecNt => "matvec_nt",
            MatmulNtTiled => "matmul_nt_tiled",
            MatmulNnTiled => "matmul_nn_tiled",
            MatmulTnTiled => "matmul_tn_tiled",
            MatmulReduce => "matmul_reduce",
            Quant(op, ty) => return Cow::Owned(format!("{}_{}", op.name(), ty.name().to_lowercase())),
            RopeForward => "rope_forward",
            RopeBackward => "rope_backward",
            AttentionForward => "attention_forward",
            AttentionBackwardDq => "attention_backward_dq",
            AttentionBackwardDkv => "attention_backward_dkv",
            AttentionDkvReduce => "attention_dkv_reduce",
            AttentionForwardTiled => "attention_forward_tiled",
            AttentionBackwardDqTiled => "attention_backward_dq_tiled",
            AttentionBackwardDkvTiled => "attention_backward_dkv_tiled",
            AttentionDecode => "attention_decode",
            KvAppend => "kv_append",
            SwigluForward => "swiglu_forward",
            SwigluBackward => "swiglu_backward",
            AddInplace => "add_inplace",
            AddBias => "add_bias",
            Dropout => "dropout",
            CopyColumns => "copy_columns",
            CrossEntropyForward => "cross_entropy_forward",
            CrossEntropyBackward => "cross_entropy_backward",
            LossSum => "loss_sum",
            GradSumsqPartial => "grad_sumsq_partial",
            GradNormFinalize => "grad_norm_finalize",
            Adamw => "adamw",
            FmaPeak => "fma_peak",
            RowSumsq => "row_sumsq",
            DoraNorm => "dora_norm",
            DoraMagnitude => "dora_magnitude",
            DoraForward => "dora_forward",
            DoraScaleDy => "dora_scale_dy",
            DoraDmag => "dora_dmag",
            DoraScaleRows => "dora_scale_rows",
        })
    }
}

/// What a kernel of `shaders/matmul_quant.wgsl` does with its frozen weight W (N, K).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum QuantOp {
    /// y = x·Wᵀ, a linear layer's forward.
    MatmulNt,
    /// dx = dy·W, a linear layer's input gradient.
    MatmulNn,
    /// y = x·Wᵀ in 64×64 tiles through workgroup memory (the tiled family).
    MatmulNtTiled,
    /// dx = dy·W in 64×64 tiles through workgroup memory (the tiled family).
    MatmulNnTiled,
    /// y = x·Wᵀ for at most four rows of x (decoding).
    MatvecNt,
    /// Rows of W by token id: the embedding lookup.
    Gather,
    /// Σ_k W[n, k]² per row: DoRA's ‖W‖².
    RowSumsq,
}

impl QuantOp {
    fn name(self) -> &'static str {
        match self {
            QuantOp::MatmulNt => "matmul_nt",
            QuantOp::MatmulNn => "matmul_nn",
            QuantOp::MatmulNtTiled => "matmul_nt_tiled",
            QuantOp::MatmulNnTiled => "matmul_nn_tiled",
            QuantOp::MatvecNt => "matvec_nt",
            QuantOp::Gather => "gather",
            QuantOp::RowSumsq => "row_sumsq",
        }
    }
}

/// Shader modules and pipelines, built on first use and kept for the device's life.
pub(crate) struct KernelCache {
    /// Whether the modules use subgroup operations (see [`Shader::source`]).
    subgroups: bool,
    modules: Mutex<HashMap<Shader, wgpu::ShaderModule>>,
    /// Keyed by the kernel and the value of its [`Kernel::constant`] (0 for none).
    pipelines: Mutex<HashMap<(Kernel, u32), Arc<wgpu::ComputePipeline>>>,
}

impl KernelCache {
    /// An empty cache whose modules use subgroup operations when `subgroups` (the device must
    /// have the `subgroups` feature then).
    pub(crate) fn new(subgroups: bool) -> KernelCache {
        KernelCache { subgroups, modules: Mutex::default(), pipelines: Mutex::default() }
    }

    pub(crate) fn pipeline(&self, device: &wgpu::Device, kernel: Kernel, value: u32) -> Arc<wgpu::ComputePipeline> {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = pipelines.get(&(kernel, value)) {
            return p.clone();
        }
        let constants: Vec<(&str, f64)> = kernel.constant().map(|name| (name, value as f64)).into_iter().collect();
        let shader = kernel.shader();
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        let entry = kernel.entry_point();
        let module = modules.entry(shader).or_insert_with(|| {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&entry),
                source: wgpu::ShaderSource::Wgsl(shader.source(self.subgroups).into()),
            })
        });
        let pipeline = Arc::new(device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&entry),
            layout: None,
            module,
            entry_point: Some(&entry),
            compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, ..Default::default() },
            cache: None,
        }));
        pipelines.insert((kernel, value), pipeline.clone());
        pipeline
    }
}
