//! The whole decoder on the CPU, forward and backward, built from the kernel references of
//! [`crate::cpu`]: the reference for a model's logits, loss and LoRA gradients. Shapes as in
//! `weblora::model`; LoRA dropout is not modelled (use dropout 0).

use std::collections::HashMap;

use weblora::gpu::Gpu;
use weblora::lora::{Lora, Target};
use weblora::model::{Batch, Model, ModelConfig};

use crate::cpu;

/// Base weights by Hugging Face name; a tied model has no `lm_head.weight`.
pub type Weights = HashMap<String, Vec<f32>>;
/// Per (layer, target): A (r, in) and B (out, r), or their gradients.
pub type LoraPairs = HashMap<(usize, Target), (Vec<f32>, Vec<f32>)>;

/// An adapter: rank, scaling and the A/B pairs of every adapted projection.
pub struct Adapter {
    pub r: usize,
    pub scaling: f32,
    pub modules: LoraPairs,
}

/// A model's weights read back from the GPU (f32 or split into f32 parts).
pub fn read_weights(gpu: &Gpu, model: &Model) -> Weights {
    let read = |(name, w): (String, weblora::gpu::Weight)| {
        let values = pollster::block_on(w.read_f32(gpu, &name)).unwrap();
        (name, values)
    };
    model.weights.named().into_iter().map(read).collect()
}

/// The adapter's A/B pairs (or their gradients) from its flat buffer, by (layer, target).
pub fn lora_pairs(lora: &Lora, flat: &[f32]) -> LoraPairs {
    let tensors = lora.unpack(flat);
    lora.modules
        .iter()
        .zip(tensors.chunks(2))
        .map(|(m, ab)| ((m.layer, m.target), (ab[0].2.clone(), ab[1].2.clone())))
        .collect()
}

/// An adapter on the GPU, read back for the reference.
pub fn read_adapter(gpu: &Gpu, lora: &Lora) -> Adapter {
    let flat = pollster::block_on(lora.params.read_f32(gpu)).unwrap();
    Adapter { r: lora.config.r, scaling: lora.config.scaling(), modules: lora_pairs(lora, &flat) }
}

/// What the reference computes for one batch.
pub struct Output {
    pub logits: Vec<f32>, // (N, V)
    pub loss: f32,        // mean over supervised tokens
    pub grads: LoraPairs, // dL/dA, dL/dB
}

struct Layer<'a> {
    cfg: &'a ModelConfig,
    w: &'a Weights,
    lora: &'a Adapter,
    l: usize,
    n: usize,
}

/// Activations of one layer that backward reads.
struct Acts {
    x: Vec<f32>,
    ln1: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    probs: Vec<f64>,
    att: Vec<f32>,
    xmid: Vec<f32>,
    ln2: Vec<f32>,
    g: Vec<f32>,
    u: Vec<f32>,
    h: Vec<f32>,
    lora_u: HashMap<Target, Vec<f32>>,
}

impl Layer<'_> {
    fn weight(&self, name: &str) -> &[f32] {
        let key = format!("model.layers.{}.{name}", self.l);
        self.w.get(&key).unwrap_or_else(|| panic!("no weight {key}"))
    }

    fn dims(&self, t: Target) -> (usize, usize) {
        let (c, f) = (self.cfg.hidden_size, self.cfg.intermediate_size);
        let (qd, kvd) = (self.cfg.q_dim(), self.cfg.kv_dim());
        match t {
            Target::Q => (c, qd),
            Target::K | Target::V => (c, kvd),
            Target::O => (qd, c),
            Target::Gate | Target::Up => (c, f),
            Target::Down => (f, c),
        }
    }

    /// y (N, out) = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ, and u = x·Aᵀ when adapted.
    fn linear_forward(&self, x: &[f32], t: Target, acts_u: &mut HashMap<Target, Vec<f32>>) -> Vec<f32> {
        let (inp, out) = self.dims(t);
        let n = self.n;
        let mut y = vec![0.0; n * out];
        cpu::matmul_nt(&mut y, x, self.weight(&format!("{}.weight", t.module_path())), n, out, inp, 1.0, 0.0);
        if let Some(bias) = self.w.get(&format!("model.layers.{}.{}.bias", self.l, t.module_path())) {
            for row in y.chunks_mut(out) {
                row.iter_mut().zip(bias).for_each(|(y, b)| *y += b);
            }
        }
        if let Some((a, b)) = self.lora.modules.get(&(self.l, t)) {
            let r = self.lora.r;
            let mut u = vec![0.0; n * r];
            cpu::matmul_nt(&mut u, x, a, n, r, inp, 1.0, 0.0);
            cpu::matmul_nt(&mut y, &u, b, n, out, r, self.lora.scaling, 1.0);
            acts_u.insert(t, u);
        }
        y
    }

    /// dx (N, in) of the projection for dy (N, out); stores dA and dB in `grads`.
    fn linear_backward(&self, dy: &[f32], x: &[f32], t: Target, acts: &Acts, grads: &mut LoraPairs) -> Vec<f32> {
        let (inp, out) = self.dims(t);
        let n = self.n;
        let mut dx = vec![0.0; n * inp];
        cpu::matmul_nn(&mut dx, dy, self.weight(&format!("{}.weight", t.module_path())), n, inp, out, 1.0, 0.0);
        if let Some((a, b)) = self.lora.modules.get(&(self.l, t)) {
            let (r, s) = (self.lora.r, self.lora.scaling);
            let u = &acts.lora_u[&t];
            let (mut ga, mut gb, mut du) = (vec![0.0; r * inp], vec![0.0; out * r], vec![0.0; n * r]);
            cpu::matmul_tn(&mut gb, dy, u, out, r, n, s, 0.0);
            cpu::matmul_nn(&mut du, dy, b, n, r, out, s, 0.0);
            cpu::matmul_tn(&mut ga, &du, x, r, inp, n, 1.0, 0.0);
            cpu::matmul_nn(&mut dx, &du, a, n, inp, r, 1.0, 1.0);
            grads.insert((self.l, t), (ga, gb));
        }
        dx
    }
}

fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// cos and sin tables (max_t, HD/2) of default RoPE, in f64 rounded once.
fn rope_tables(theta: f64, hd: usize, max_t: usize) -> (Vec<f32>, Vec<f32>) {
    let half = hd / 2;
    let angle = |p: usize, d: usize| p as f64 * theta.powf(-2.0 * d as f64 / hd as f64);
    let cos = (0..max_t * half).map(|i| angle(i / half, i % half).cos() as f32).collect();
    let sin = (0..max_t * half).map(|i| angle(i / half, i % half).sin() as f32).collect();
    (cos, sin)
}

/// Forward and backward of the whole model on `batch` (targets already shifted, −100 ignored;
/// its positions and segments as the engine reads them). The config must use default RoPE.
pub fn forward_backward(cfg: &ModelConfig, w: &Weights, lora: &Adapter, batch: &Batch) -> Output {
    let (b, t, ids, targets, pos, seg) =
        (batch.b, batch.t, &batch.ids, &batch.targets, &batch.positions, &batch.segments);
    let (n, c, v) = (b * t, cfg.hidden_size, cfg.vocab_size);
    let (nh, nkv, hd, eps) = (cfg.num_attention_heads, cfg.n_kv_heads(), cfg.head_dim(), cfg.rms_norm_eps);
    let theta = cfg.rope().rope_theta.unwrap_or(10000.0);
    let (cos, sin) = rope_tables(theta, hd, t);
    let embed = &w["model.embed_tokens.weight"];
    let head = w.get("lm_head.weight").unwrap_or(embed);

    let mut x: Vec<f32> = ids.iter().flat_map(|&id| embed[id as usize * c..][..c].to_vec()).collect();
    let mut layers = Vec::new();
    for l in 0..cfg.num_hidden_layers {
        let ly = Layer { cfg, w, lora, l, n };
        let mut lora_u = HashMap::new();
        let (ln1, _) = cpu::rmsnorm_forward(&x, ly.weight("input_layernorm.weight"), n, c, eps);
        let mut q = ly.linear_forward(&ln1, Target::Q, &mut lora_u);
        let mut k = ly.linear_forward(&ln1, Target::K, &mut lora_u);
        let vv = ly.linear_forward(&ln1, Target::V, &mut lora_u);
        cpu::rope(&mut q, &cos, &sin, pos, nh, hd, false);
        cpu::rope(&mut k, &cos, &sin, pos, nkv, hd, false);
        let (att, probs) = cpu::attention_forward(&q, &k, &vv, seg, b, t, nh, nkv, hd);
        let xmid = add(&x, &ly.linear_forward(&att, Target::O, &mut lora_u));
        let (ln2, _) = cpu::rmsnorm_forward(&xmid, ly.weight("post_attention_layernorm.weight"), n, c, eps);
        let g = ly.linear_forward(&ln2, Target::Gate, &mut lora_u);
        let u = ly.linear_forward(&ln2, Target::Up, &mut lora_u);
        let h = cpu::swiglu_forward(&g, &u);
        let out = add(&xmid, &ly.linear_forward(&h, Target::Down, &mut lora_u));
        layers.push(Acts { x, ln1, q, k, v: vv, probs, att, xmid, ln2, g, u, h, lora_u });
        x = out;
    }
    let norm = &w["model.norm.weight"];
    let (lnf, _) = cpu::rmsnorm_forward(&x, norm, n, c, eps);
    let mut logits = vec![0.0; n * v];
    cpu::matmul_nt(&mut logits, &lnf, head, n, v, c, 1.0, 0.0);
    let count = targets.iter().filter(|&&t| t >= 0).count().max(1);
    let (losses, dlogits) = cpu::cross_entropy(&logits, targets, v, 1.0 / count as f32);
    let loss = (losses.iter().map(|&l| l as f64).sum::<f64>() / count as f64) as f32;

    // dlnf = dlogits · head, streaming the head's rows once.
    let mut dlnf64 = vec![0f64; n * c];
    for (id, row) in head.chunks(c).enumerate() {
        for i in 0..n {
            let d = dlogits[i * v + id] as f64;
            if d != 0.0 {
                dlnf64[i * c..][..c].iter_mut().zip(row).for_each(|(acc, &w)| *acc += d * w as f64);
            }
        }
    }
    let dlnf: Vec<f32> = dlnf64.into_iter().map(|d| d as f32).collect();
    let mut dres = cpu::rmsnorm_backward(&dlnf, &x, norm, n, c, eps);
    let mut grads = HashMap::new();
    for (l, a) in layers.iter().enumerate().rev() {
        let ly = Layer { cfg, w, lora, l, n };
        let dh = ly.linear_backward(&dres, &a.h, Target::Down, a, &mut grads);
        let (dg, du) = cpu::swiglu_backward(&dh, &a.g, &a.u);
        let dln2 = add(
            &ly.linear_backward(&du, &a.ln2, Target::Up, a, &mut grads),
            &ly.linear_backward(&dg, &a.ln2, Target::Gate, a, &mut grads),
        );
        let dxmid =
            add(&dres, &cpu::rmsnorm_backward(&dln2, &a.xmid, ly.weight("post_attention_layernorm.weight"), n, c, eps));
        let datt = ly.linear_backward(&dxmid, &a.att, Target::O, a, &mut grads);
        let (mut dq, mut dk, dv) = cpu::attention_backward(&datt, &a.q, &a.k, &a.v, &a.probs, b, t, nh, nkv, hd);
        cpu::rope(&mut dk, &cos, &sin, pos, nkv, hd, true);
        cpu::rope(&mut dq, &cos, &sin, pos, nh, hd, true);
        let dln1 = add(
            &add(
                &ly.linear_backward(&dv, &a.ln1, Target::V, a, &mut grads),
                &ly.linear_backward(&dk, &a.ln1, Target::K, a, &mut grads),
            ),
            &ly.linear_backward(&dq, &a.ln1, Target::Q, a, &mut grads),
        );
        dres = add(&dxmid, &cpu::rmsnorm_backward(&dln1, &a.x, ly.weight("input_layernorm.weight"), n, c, eps));
    }
    Output { logits, loss, grads }
}
