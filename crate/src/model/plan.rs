//! A [`Plan`]: every buffer and program for one (batch B, sequence T) shape, built once and
//! replayed each step. A training step is one submission with one 16-byte readback.

use super::layer::{layer_backward, layer_forward, Alloc, Attend, Ctx, LayerActs, Scratch, Sizes, Trained};
use super::memory::{activation_buffers, show_bytes, Limits, ModelMemory};
use super::Model;
use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, KernelTime, Program, Readback, SplitTensor, Tensor, Timer};
use crate::lora::{Lora, LoraModule, TrainState};
use crate::ops::{self, AdamwParams, AttentionShape, StepParams, CE_STATS, PARTIALS, STATS_LEN};

/// Rows of logits held at once by the fused cross-entropy (a multiple of 64, so chunk views
/// of (N, C) tensors stay 256-byte aligned).
const CE_CHUNK: usize = 64;

/// How a plan trains.
#[derive(Clone, Copy, Debug)]
pub struct PlanOptions {
    /// Keep only each layer's input and recompute the rest in backward.
    pub recompute: bool,
    /// Global gradient-norm clip; 0 turns clipping off.
    pub max_grad_norm: f32,
    pub adamw: AdamwParams,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            recompute: false,
            max_grad_norm: 1.0,
            adamw: AdamwParams { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
        }
    }
}

/// One batch of token ids (B, T) and next-token targets (B, T), row-major: targets[t] is the
/// label of position t + 1, or −100 where no loss is taken (prompt, padding, the last position).
///
/// A row holds one sequence or, packed, several laid end to end: `segments` (B, T) gives each
/// token the id of its sequence in the row (a run of equal ids; attention never crosses runs)
/// and `positions` (B, T) its RoPE position, restarting at 0 with each sequence. A batch made
/// by [`Batch::new`] has one segment a row and positions 0..T.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub b: usize,
    pub t: usize,
    pub ids: Vec<u32>,
    pub targets: Vec<i32>,
    pub positions: Vec<u32>,
    pub segments: Vec<u32>,
}

impl Batch {
    /// A batch of `b` rows of `t` tokens, one sequence a row; the lengths must match.
    pub fn new(b: usize, t: usize, ids: Vec<u32>, targets: Vec<i32>) -> Result<Batch> {
        if b * t == 0 || ids.len() != b * t || targets.len() != b * t {
            return Err(Error::Input(format!(
                "a batch of {b} × {t} needs {} ids and targets, got {} and {}",
                b * t,
                ids.len(),
                targets.len()
            )));
        }
        Ok(Batch { b, t, ids, targets, positions: columns(b, t), segments: vec![0; b * t] })
    }

    /// From Hugging Face style `labels` (B, T), which the model shifts: the label at t + 1 is
    /// the target at t.
    pub fn from_labels(ids: Vec<u32>, labels: &[i64], t: usize) -> Batch {
        let mut targets = vec![-100i32; labels.len()];
        for (row, chunk) in labels.chunks(t).enumerate() {
            for i in 0..t.saturating_sub(1) {
                let l = chunk[i + 1];
                targets[row * t + i] = if l < 0 { -100 } else { l as i32 };
            }
        }
        let b = ids.len() / t.max(1);
        Batch { b, t, ids, targets, positions: columns(b, t), segments: vec![0; b * t] }
    }

    /// Tokens that carry a loss.
    pub fn supervised(&self) -> usize {
        self.targets.iter().filter(|&&t| t >= 0).count()
    }
}

/// Positions 0..T in each of B rows.
fn columns(b: usize, t: usize) -> Vec<u32> {
    (0..b * t).map(|i| (i % t) as u32).collect()
}

/// The numbers a step reads back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    pub loss: f32,
    /// Gradient norm before clipping (0 when the step did not update).
    pub grad_norm: f32,
}

pub struct Plan {
    gpu: Gpu,
    pub b: usize,
    pub t: usize,
    vocab: usize,
    ids: Tensor,         // (N) u32
    targets: Tensor,     // (N) i32
    pos: Tensor,         // (N) u32 RoPE position of each token
    seg: Tensor,         // (N) u32 segment of each token
    step: Tensor,        // StepParams
    stats: Tensor,       // (STATS_LEN)
    lnf: Tensor,         // (N, C)
    output: SplitTensor, // (V, C) lm_head or the tied embedding
    input_grad: Tensor,  // (N, C): dL/d(embeddings) after backward
    state: TrainState,
    forward_train: Program,
    forward_eval: Program,
    backward: Program,
    optimizer: Program,
    zero_grads: Program,
    readback: Readback,
    activation_bytes: u64,
    _keep: Vec<Tensor>,
}

/// Every activation and scratch buffer of a plan for one (B, T) shape, in the order they are
/// allocated. In a [`Plan`] each is a [`Tensor`]; the memory plan (`super::memory`) runs this
/// same code with an allocator that only records names and shapes, so the two cannot drift.
pub(super) struct Buffers<T = Tensor> {
    stats: T,           // (STATS_LEN) loss, gradient norm, clip factor
    partials: T,        // (PARTIALS)
    matmul_partials: T, // (SPLIT_K_MAX_PARTS) the programs' scratch: split-K partial products
    /// (max(N, Rp), rows of a part) the programs' part scratch, when a projection is split by
    /// output rows: a product over one part before it goes into its columns
    part_products: Option<T>,
    acts: Vec<LayerActs<T>>,
    x_final: T, // (N, C)
    lnf: T,     // (N, C)
    rstdf: T,   // (N)
    s: Scratch<T>,
    dlnf: T,        // (N, C)
    losses: T,      // (N)
    logits: Vec<T>, // (min(N, 64), rows of the block) per vocabulary block of the head
    ce_stats: T,    // (min(N, 64), CE_STATS)
}

impl<T: Clone> Buffers<T> {
    /// Allocates through `z` for `sizes`: every layer's activations, or under `recompute` one
    /// shared set plus each layer's input; `head_rows`: the rows of each block of the loss head;
    /// `part_rows`: the most rows of a part of a projection split by output rows (0: none is).
    pub fn allocate(
        z: &Alloc<T>,
        sizes: &Sizes,
        layers: usize,
        recompute: bool,
        head_rows: &[usize],
        part_rows: usize,
    ) -> Result<Self> {
        let (n, c) = (sizes.b * sizes.t, sizes.c);
        let stats = z("stats", &[STATS_LEN])?;
        let partials = z("partials", &[PARTIALS])?;
        let matmul_partials = z("matmul_partials", &[ops::SPLIT_K_MAX_PARTS])?;
        let part_products = match part_rows {
            0 => None,
            rows => Some(z("part_products", &[n.max(sizes.rp), rows])?),
        };
        let mut acts: Vec<LayerActs<T>> = Vec::with_capacity(layers);
        for l in 0..layers {
            let x = z("x", &[n, c])?;
            let a = if recompute && l > 0 { acts[0].share(x) } else { LayerActs::allocate(z, x, sizes)? };
            acts.push(a);
        }
        let x_final = z("x_final", &[n, c])?;
        let lnf = z("lnf", &[n, c])?;
        let rstdf = z("rstdf", &[n])?;
        let s = Scratch::allocate(z, sizes)?;
        let dlnf = z("dlnf", &[n, c])?;
        let losses = z("losses", &[n])?;
        let chunk_rows = n.min(CE_CHUNK);
        let logits = head_rows.iter().map(|&vb| z("logits_chunk", &[chunk_rows, vb])).collect::<Result<_>>()?;
        let ce_stats = z("ce_stats", &[chunk_rows, CE_STATS])?;
        Ok(Buffers {
            stats,
            partials,
            matmul_partials,
            part_products,
            acts,
            x_final,
            lnf,
            rstdf,
            s,
            dlnf,
            losses,
            logits,
            ce_stats,
        })
    }
}

/// The most rows of a vocabulary block of the loss head: a chunk of [`CE_CHUNK`] rows of its
/// logits must fit one binding of `max_tensor_bytes`. The same for every (B, T), so plans of
/// several shapes can share one [`Arena`].
pub(super) fn max_head_block(max_tensor_bytes: u64) -> usize {
    (max_tensor_bytes / (CE_CHUNK as u64 * 4)) as usize
}

/// The activations of the largest (B, T) a trainer will see, allocated once: a plan for that
/// shape or any with no more tokens B·T takes views of these buffers instead of its own (every
/// shape's buffers come in the same order, each no larger than the arena's).
pub struct Arena {
    pub b: usize,
    pub t: usize,
    recompute: bool,
    tensors: Vec<Tensor>,
}

impl Arena {
    /// Buffers for `b` × `t` tokens of `model` with `lora`'s targets and rank.
    pub fn new(gpu: &Gpu, model: &Model, lora: &Lora, b: usize, t: usize, recompute: bool) -> Result<Arena> {
        check_shape(model, b, t)?;
        // The same buffers, planned first: none may be larger than one binding.
        let limits = Limits::of(&gpu.info);
        let planned = activation_buffers(&ModelMemory::of(model), &lora.config, b, t, recompute, &limits)?;
        if let Some(big) = planned.iter().find(|a| a.bytes > limits.max_binding()) {
            return Err(Error::Memory(format!(
                "batch {b} × {t} needs a binding of {} for {}; this GPU allows {} per binding",
                show_bytes(big.bytes),
                big.name,
                show_bytes(limits.max_binding())
            )));
        }
        let tensors = std::cell::RefCell::new(Vec::new());
        let z = |name: &str, shape: &[usize]| {
            let t = Tensor::zeros(gpu, name, shape, DType::F32)?;
            tensors.borrow_mut().push(t.clone());
            Ok::<_, Error>(t)
        };
        let sizes = Sizes::new(&model.config, b, t, &lora.config.targets, lora.config.r_padded(), lora.config.use_dora);
        let head = model.weights.output().blocks(max_head_block(gpu.info.max_tensor_bytes()))?;
        let rows: Vec<usize> = head.iter().map(|(_, w)| w.shape()[0]).collect();
        let part_rows = model.weights.projection_part_rows();
        Buffers::allocate(&z, &sizes, model.config.num_hidden_layers, recompute, &rows, part_rows)?;
        Ok(Arena { b, t, recompute, tensors: tensors.into_inner() })
    }

    /// Whether a plan of `b` × `t` fits in these buffers.
    pub fn holds(&self, b: usize, t: usize) -> bool {
        b * t <= self.b * self.t
    }

    /// Bytes of the buffers.
    pub fn bytes(&self) -> u64 {
        self.tensors.iter().map(Tensor::byte_size).sum()
    }
}

fn check_shape(model: &Model, b: usize, t: usize) -> Result<()> {
    if b == 0 || t == 0 {
        return Err(Error::Input(format!("batch {b} × sequence {t} is empty")));
    }
    let max = model.config.max_position_embeddings;
    if t > max {
        return Err(Error::Input(format!("sequence length {t} exceeds max_position_embeddings {max}")));
    }
    Ok(())
}

impl Plan {
    /// A plan for `b` × `t` with buffers and a training state of its own.
    pub fn new(gpu: &Gpu, model: &Model, lora: &Lora, b: usize, t: usize, opts: PlanOptions) -> Result<Plan> {
        Plan::with_state(gpu, model, lora, &TrainState::new(gpu, lora)?, b, t, opts)
    }

    /// A plan for `b` × `t` with buffers of its own that accumulates into `state` (shared, e.g.,
    /// by plans of several shapes over one adapter).
    pub fn with_state(
        gpu: &Gpu,
        model: &Model,
        lora: &Lora,
        state: &TrainState,
        b: usize,
        t: usize,
        opts: PlanOptions,
    ) -> Result<Plan> {
        let arena = Arena::new(gpu, model, lora, b, t, opts.recompute)?;
        Plan::in_arena(gpu, model, lora, state, b, t, opts, &arena)
    }

    /// A plan for `b` × `t` whose activations are views of `arena`'s buffers (which must hold
    /// the shape, under the same recompute setting), accumulating `lora`'s gradients into
    /// `state` and updating its moments: the plans of one run, one per batch shape, share one
    /// arena and one state.
    #[allow(clippy::too_many_arguments)]
    pub fn in_arena(
        gpu: &Gpu,
        model: &Model,
        lora: &Lora,
        state: &TrainState,
        b: usize,
        t: usize,
        opts: PlanOptions,
        arena: &Arena,
    ) -> Result<Plan> {
        let cfg = &model.config;
        check_shape(model, b, t)?;
        if !arena.holds(b, t) || arena.recompute != opts.recompute {
            return Err(Error::Internal(format!(
                "a plan of {b} × {t} (recompute {}) in an arena of {} × {} (recompute {})",
                opts.recompute, arena.b, arena.t, arena.recompute
            )));
        }
        let n = b * t;
        let (c, v, rp) = (cfg.hidden_size, cfg.vocab_size, lora.config.r_padded());
        let shape = AttentionShape { b, t, nh: cfg.num_attention_heads, nkv: cfg.n_kv_heads(), hd: cfg.head_dim() };
        let allocated = std::cell::Cell::new(0u64);
        let next = std::cell::Cell::new(0usize);
        let z = |name: &str, shape: &[usize]| {
            let i = next.replace(next.get() + 1);
            let whole = arena.tensors.get(i).filter(|w| w.numel() >= shape.iter().product());
            let whole =
                whole.ok_or_else(|| Error::Internal(format!("the arena has no buffer for {name} {shape:?}")))?;
            let t = whole.view(0, shape)?;
            allocated.set(allocated.get() + t.byte_size());
            Ok::<_, Error>(t)
        };

        let ids = Tensor::zeros(gpu, "ids", &[n], DType::U32)?;
        let targets = Tensor::zeros(gpu, "targets", &[n], DType::I32)?;
        let pos = Tensor::zeros(gpu, "positions", &[n], DType::U32)?;
        let seg = Tensor::zeros(gpu, "segments", &[n], DType::U32)?;
        let step = Tensor::zeros(gpu, "step", &[8], DType::U32)?;
        let (cos, sin) = cfg.rope().tables(cfg.head_dim(), t);
        let cos = Tensor::from_f32(gpu, "rope.cos", &[t, cfg.head_dim() / 2], &cos)?;
        let sin = Tensor::from_f32(gpu, "rope.sin", &[t, cfg.head_dim() / 2], &sin)?;

        let sizes = Sizes::new(cfg, b, t, &lora.config.targets, rp, lora.config.use_dora);
        // The head runs in vocabulary blocks, each inside one part of the output projection and
        // small enough that a chunk of its logits fits one binding.
        let head = model.weights.output().blocks(max_head_block(gpu.info.max_tensor_bytes()))?;
        let rows: Vec<usize> = head.iter().map(|(_, w)| w.shape()[0]).collect();
        let part_rows = model.weights.projection_part_rows();
        let bufs = Buffers::allocate(&z, &sizes, cfg.num_hidden_layers, opts.recompute, &rows, part_rows)?;
        let Buffers {
            stats,
            partials,
            matmul_partials,
            part_products,
            acts,
            x_final,
            lnf,
            rstdf,
            s,
            dlnf,
            losses,
            logits,
            ce_stats,
        } = bufs;
        let program = || Program::with_scratch(gpu, matmul_partials.clone(), part_products.clone());

        let cx = Ctx {
            n,
            shape,
            eps: cfg.rms_norm_eps,
            lora_cfg: &lora.config,
            step: &step,
            cos: &cos,
            sin: &sin,
            pos: &pos,
            train: true,
        };
        let cx_eval = Ctx { train: false, ..cx };
        let w = &model.weights;
        let layer_lora = |l: usize| -> Vec<&LoraModule> { lora.modules.iter().filter(|m| m.layer == l).collect() };
        let layer_grads = |l: usize| -> Vec<Trained> {
            lora.modules.iter().zip(&state.modules).filter(|(m, _)| m.layer == l).collect()
        };
        let out_of = |l: usize| if l + 1 < acts.len() { &acts[l + 1].x } else { &x_final };

        // Forward: embeddings, layers, final norm, then the loss head (with dlnf when training).
        let forward = |with_grad: bool| -> Result<Program> {
            let cx = if with_grad { &cx } else { &cx_eval };
            let full = Attend::Full { seg: &seg };
            let mut p = program();
            ops::embedding_forward(&mut p, &acts[0].x, &ids, &w.embed_tokens)?;
            for (l, a) in acts.iter().enumerate() {
                layer_forward(&mut p, cx, out_of(l), a, &w.layers[l], &layer_lora(l), &s, full)?;
            }
            ops::rmsnorm_forward(&mut p, &lnf, &rstdf, &x_final, &w.norm, n, c, cfg.rms_norm_eps)?;
            for start in (0..n).step_by(CE_CHUNK) {
                let rows = (n - start).min(CE_CHUNK);
                let x = lnf.view(start * c, &[rows, c])?;
                let (loss, target) = (losses.view(start, &[rows])?, targets.view(start, &[rows])?);
                let stats = ce_stats.view(0, &[rows, CE_STATS])?;
                let mut blocks = Vec::with_capacity(head.len());
                for ((v0, wb), l) in head.iter().zip(&logits) {
                    let vb = wb.shape()[0];
                    let chunk = l.view(0, &[rows, vb])?;
                    ops::frozen_nt(&mut p, &chunk, &x, wb, rows, 1.0, 0.0)?;
                    ops::cross_entropy_forward(&mut p, &stats, &loss, &chunk, &target, rows, *v0, v)?;
                    blocks.push((*v0, wb, chunk));
                }
                if with_grad {
                    let dx = dlnf.view(start * c, &[rows, c])?;
                    for (i, (v0, wb, chunk)) in blocks.iter().enumerate() {
                        let beta = if i == 0 { 0.0 } else { 1.0 };
                        ops::cross_entropy_backward(&mut p, chunk, &stats, &target, &step, rows, *v0, v)?;
                        ops::frozen_nn(&mut p, &dx, chunk, wb, rows, 1.0, beta)?;
                    }
                }
            }
            ops::loss_sum(&mut p, &stats, &losses, &step)?;
            Ok(p)
        };
        let forward_train = forward(true)?;
        let forward_eval = forward(false)?;

        // Backward: the same list reversed. Under recompute each layer's forward is replayed first.
        let mut backward = program();
        backward.clear(&s.dres);
        ops::rmsnorm_backward(&mut backward, &s.dres, &dlnf, &x_final, &rstdf, &w.norm, n, c)?;
        for l in (0..acts.len()).rev() {
            if opts.recompute {
                let full = Attend::Full { seg: &seg };
                layer_forward(&mut backward, &cx, out_of(l), &acts[l], &w.layers[l], &layer_lora(l), &s, full)?;
            }
            layer_backward(&mut backward, &cx, &acts[l], &w.layers[l], &layer_grads(l), &s, &seg)?;
        }

        let mut optimizer = program();
        ops::grad_norm(&mut optimizer, &stats, &partials, &state.grads, opts.max_grad_norm)?;
        ops::adamw(&mut optimizer, &lora.params, &state.m, &state.v, &state.grads, &stats, &step, opts.adamw)?;
        let mut zero_grads = Program::new(gpu);
        zero_grads.clear(&state.grads);
        zero_grads.clear(&stats);

        let mut keep = vec![partials, matmul_partials, cos, sin, x_final, rstdf, dlnf, losses, ce_stats];
        keep.extend(logits);
        keep.extend(part_products);
        Ok(Plan {
            gpu: gpu.clone(),
            b,
            t,
            vocab: v,
            ids,
            targets,
            pos,
            seg,
            step,
            stats,
            lnf,
            output: w.output().clone(),
            input_grad: s.dres.clone(),
            state: state.clone(),
            forward_train,
            forward_eval,
            backward,
            optimizer,
            zero_grads,
            readback: Readback::new(gpu, (STATS_LEN * 4) as u64),
            activation_bytes: allocated.get(),
            _keep: keep,
        })
    }

    /// Uploads a batch, checking its size, token ids and positions.
    pub fn set_batch(&self, batch: &Batch) -> Result<()> {
        let n = self.b * self.t;
        let lengths = [batch.ids.len(), batch.targets.len(), batch.positions.len(), batch.segments.len()];
        if batch.b != self.b || batch.t != self.t || lengths.iter().any(|&l| l != n) {
            return Err(Error::Input(format!(
                "batch of {} × {} ({} ids, {} targets, {} positions, {} segments), the plan takes {} × {}",
                batch.b, batch.t, lengths[0], lengths[1], lengths[2], lengths[3], self.b, self.t
            )));
        }
        if let Some(&bad) = batch.positions.iter().find(|&&p| p as usize >= self.t) {
            return Err(Error::Input(format!("position {bad} is past the plan's sequence length {}", self.t)));
        }
        if let Some(&bad) = batch.ids.iter().find(|&&i| i as usize >= self.vocab) {
            return Err(Error::Input(format!("token id {bad} is outside the vocabulary of {}", self.vocab)));
        }
        if let Some(&bad) = batch.targets.iter().find(|&&i| i >= self.vocab as i32) {
            return Err(Error::Input(format!("target id {bad} is outside the vocabulary of {}", self.vocab)));
        }
        self.ids.write_u32(&self.gpu, &batch.ids)?;
        self.targets.write_i32(&self.gpu, &batch.targets)?;
        self.pos.write_u32(&self.gpu, &batch.positions)?;
        self.seg.write_u32(&self.gpu, &batch.segments)
    }

    /// One forward and backward pass on the current batch, as one submission: gradients are
    /// zeroed first when `zero_grads`, AdamW updates the adapter after when `update`.
    pub async fn step(&self, params: StepParams, zero_grads: bool, update: bool) -> Result<StepStats> {
        self.step.write_u32(&self.gpu, bytemuck::cast_slice(bytemuck::bytes_of(&params)))?;
        let mut encoder =
            self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") });
        if zero_grads {
            self.zero_grads.record(&mut encoder);
        }
        self.forward_train.record(&mut encoder);
        self.backward.record(&mut encoder);
        if update {
            self.optimizer.record(&mut encoder);
        }
        self.readback.copy_from(&mut encoder, &self.stats);
        self.gpu.queue.submit([encoder.finish()]);
        let stats: Vec<f32> = bytemuck::pod_collect_to_vec(&self.readback.read(&self.gpu).await?);
        Ok(StepStats { loss: stats[0], grad_norm: if update { stats[1] } else { 0.0 } })
    }

    /// A step with an update, as [`Plan::step`] runs it, with every dispatch timed (each in a
    /// compute pass of its own): its statistics and its time by kernel. For benchmarks, on
    /// devices with timestamp queries.
    pub async fn time_step(&self, params: StepParams) -> Result<(StepStats, Vec<KernelTime>)> {
        self.step.write_u32(&self.gpu, bytemuck::cast_slice(bytemuck::bytes_of(&params)))?;
        let programs = [&self.zero_grads, &self.forward_train, &self.backward, &self.optimizer];
        let mut timer = Timer::new(&self.gpu, programs.iter().map(|p| p.dispatches()).sum())?;
        let mut encoder =
            self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("timed step") });
        for p in programs {
            p.record_timed(&mut encoder, &mut timer);
        }
        timer.resolve(&mut encoder);
        self.readback.copy_from(&mut encoder, &self.stats);
        self.gpu.queue.submit([encoder.finish()]);
        let stats: Vec<f32> = bytemuck::pod_collect_to_vec(&self.readback.read(&self.gpu).await?);
        let times = timer.read(&self.gpu).await?;
        Ok((StepStats { loss: stats[0], grad_norm: stats[1] }, times))
    }

    /// The mean loss over the supervised tokens of `batch` (uploaded here), without gradients.
    pub async fn eval_loss(&self, batch: &Batch) -> Result<f32> {
        self.set_batch(batch)?;
        let params = StepParams { inv_count: 1.0 / batch.supervised().max(1) as f32, ..Default::default() };
        self.step.write_u32(&self.gpu, bytemuck::cast_slice(bytemuck::bytes_of(&params)))?;
        self.gpu.submit(&self.forward_eval, Some((&self.readback, &self.stats)));
        let stats: Vec<f32> = bytemuck::pod_collect_to_vec(&self.readback.read(&self.gpu).await?);
        Ok(stats[0])
    }

    /// All logits (B, T, V) of `batch`: a forward pass, then the output projection of every
    /// position, one vocabulary block at a time (for tests and short prompts; training never
    /// materialises these).
    pub async fn logits(&self, batch: &Batch) -> Result<Vec<f32>> {
        self.eval_loss(batch).await?;
        let n = self.b * self.t;
        let c = self.lnf.shape()[1];
        let max_rows = (self.gpu.info.max_tensor_bytes() / (CE_CHUNK as u64 * 4)) as usize;
        let mut out = vec![0f32; n * self.vocab];
        for (v0, wb) in self.output.blocks(max_rows)? {
            let vb = wb.shape()[0];
            let logits = Tensor::zeros(&self.gpu, "logits", &[n.min(CE_CHUNK), vb], DType::F32)?;
            for start in (0..n).step_by(CE_CHUNK) {
                let rows = (n - start).min(CE_CHUNK);
                let block = logits.view(0, &[rows, vb])?;
                let mut p = Program::new(&self.gpu);
                ops::frozen_nt(&mut p, &block, &self.lnf.view(start * c, &[rows, c])?, &wb, rows, 1.0, 0.0)?;
                self.gpu.submit(&p, None);
                for (row, values) in block.read_f32(&self.gpu).await?.chunks(vb).enumerate() {
                    out[(start + row) * self.vocab + v0..][..vb].copy_from_slice(values);
                }
            }
        }
        Ok(out)
    }

    /// Bytes of the activations and scratch buffers this plan allocated.
    pub fn activation_bytes(&self) -> u64 {
        self.activation_bytes
    }

    /// The gradients and moments this plan accumulates into and updates.
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// dL/d(input embeddings) (N, C) after the last [`Plan::step`].
    pub fn input_grad(&self) -> &Tensor {
        &self.input_grad
    }
}
