//! Folding an adapter into its base: W ← W + s·B·A for every adapted projection, on the GPU,
//! and for DoRA W ← (m / ‖W + s·B·A‖) ⊙ (W + s·B·A), the norm taken per row of the unmerged
//! weight (PEFT's merge). The merged model computes what base + adapter computed (dropout
//! aside), with no adapter.

use super::Lora;
use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Program, Tensor};
use crate::io::GgmlType;
use crate::model::{Model, Weight};
use crate::ops;

/// Adds s·B·A into the base weights of `model` (which must be f32: loaded dequantized).
pub fn merge_into(gpu: &Gpu, model: &Model, lora: &Lora) -> Result<()> {
    let mut prog = Program::new(gpu);
    let (rp, s) = (lora.config.r_padded(), lora.config.scaling());
    let dora = if lora.config.use_dora {
        let out = lora.modules.iter().map(|m| m.out_features).max().unwrap_or(1);
        Some((super::dora::norm_scratch(gpu, lora)?, Tensor::zeros(gpu, "dora.scale", &[2 * out], DType::F32)?))
    } else {
        None
    };
    for m in &lora.modules {
        let lin = super::dora::projection(model, m)?;
        let where_ = || format!("layer {} {}", m.layer, m.target.hf_name());
        // (first row, f32 rows) of the base weight: one, or one per part of a split weight.
        let parts: Vec<(usize, Tensor)> = match &lin.weight {
            Weight::F32(w) => vec![(0, w.clone())],
            Weight::Split(s) if s.ty() == GgmlType::F32 && dora.is_none() => s
                .parts()
                .map(|(first, p)| p.f32().map(|t| (first, t.clone())).expect("an f32 split weight has f32 parts"))
                .collect(),
            Weight::Split(s) if s.ty() == GgmlType::F32 => {
                return Err(Error::Lora(format!(
                    "{}: the base weight is split into {} parts on this device; merging DoRA needs it whole",
                    where_(),
                    s.num_parts()
                )))
            }
            w => {
                return Err(Error::Lora(format!(
                    "{}: the base weight is kept as {} on the GPU; merging needs the model loaded dequantized",
                    where_(),
                    w.ty().name()
                )))
            }
        };
        let sc = match &dora {
            Some((scratch, sc)) => {
                let sc = sc.view(0, &[2, m.out_features])?;
                super::dora::record_scale(&mut prog, &sc, lin, m, &lora.config, scratch)?;
                Some(sc)
            }
            None => None,
        };
        for (first, w) in parts {
            // W (out, in) += s · B (out, Rp) · A (Rp, in), a part's rows of W and B at a time.
            let rows = w.shape()[0];
            let b = m.b.view(first * rp, &[rows, rp])?;
            ops::matmul_nn(&mut prog, &w, &b, &m.a, rows, m.in_features, rp, s, 1.0)?;
            if let Some(sc) = &sc {
                ops::dora_scale_rows(&mut prog, &w, sc, m.out_features, m.in_features)?;
            }
        }
    }
    gpu.submit(&prog, None);
    Ok(())
}
