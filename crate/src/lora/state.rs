//! What a run that trains an adapter keeps beside it: the accumulated gradients and the AdamW
//! moments, each in the adapter's flat layout (P). The adapter itself ([`Lora`]) holds only its
//! values, so generating, merging or exporting with it allocates none of this.

use super::Lora;
use crate::error::Result;
use crate::gpu::{DType, Gpu, Tensor};

/// The gradients of one adapted projection: views into [`TrainState::grads`].
#[derive(Clone)]
pub struct ModuleGrads {
    pub ga: Tensor, // (Rp, in), accumulated
    pub gb: Tensor, // (out, Rp), accumulated
    /// DoRA's magnitude gradient (out), accumulated.
    pub gm: Option<Tensor>,
}

/// Gradients and AdamW moments for training one adapter, laid out as its parameters. A clone
/// shares the GPU buffers (the plans of one run, one per batch shape, share one state).
#[derive(Clone)]
pub struct TrainState {
    pub grads: Tensor, // (P)
    pub m: Tensor,     // (P)
    pub v: Tensor,     // (P)
    /// One per module of the adapter, in the adapter's order.
    pub modules: Vec<ModuleGrads>,
}

impl TrainState {
    /// Zero gradients and moments for training `lora`.
    pub fn new(gpu: &Gpu, lora: &Lora) -> Result<TrainState> {
        let p = lora.params.numel();
        let flat = |name: &str| Tensor::zeros(gpu, name, &[p], DType::F32);
        let (grads, m, v) = (flat("lora.grads")?, flat("lora.m")?, flat("lora.v")?);
        let modules = lora
            .modules
            .iter()
            .map(|md| {
                let (i, o, rp) = (md.in_features, md.out_features, lora.config.r_padded());
                let gm = if md.mag.is_some() { Some(grads.view(md.m_start, &[o])?) } else { None };
                Ok(ModuleGrads { ga: grads.view(md.a_start, &[rp, i])?, gb: grads.view(md.b_start, &[o, rp])?, gm })
            })
            .collect::<Result<_>>()?;
        Ok(TrainState { grads, m, v, modules })
    }

    /// Reads the accumulated gradients back, keyed like `lora`'s parameters.
    pub async fn read_grads(&self, gpu: &Gpu, lora: &Lora) -> Result<Vec<(String, Vec<usize>, Vec<f32>)>> {
        Ok(lora.unpack(&self.grads.read_f32(gpu).await?))
    }
}
