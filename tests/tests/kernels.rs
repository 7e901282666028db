//! Every non-matmul kernel, forward and backward, against its CPU reference, over sizes that
//! are not multiples of the workgroup size.

use weblora::gpu::{DType, KernelFamily, Program, SplitTensor, Tensor};
use weblora::ops::{self, AttentionShape, StepParams};
use weblora_tests::{assert_close, cpu, family_gpu, gpu, read, read_from, Rng, F32};

fn f32_tensor(name: &str, data: &[f32]) -> Tensor {
    Tensor::from_f32(gpu(), name, &[data.len()], data).unwrap()
}

fn step_tensor(g: &weblora::gpu::Gpu, step: StepParams) -> Tensor {
    let t = Tensor::zeros(g, "step", &[8], DType::U32).unwrap();
    t.write_u32(g, bytemuck::cast_slice(bytemuck::bytes_of(&step))).unwrap();
    t
}

/// RMSNorm in both kernel families: the tiled family's row sums use subgroup operations where the
/// device offers them (lavapipe does), the CPU family's workgroup memory alone.
#[test]
fn rmsnorm_forward_and_backward() {
    for family in [KernelFamily::Cpu, KernelFamily::Tiled] {
        let g = family_gpu(family);
        let tensor = |name: &str, data: &[f32], shape: &[usize]| Tensor::from_f32(g, name, shape, data).unwrap();
        for &(n, c) in &[(1, 4), (3, 37), (17, 64), (5, 300)] {
            let mut rng = Rng::new(n as u64 * 31 + c as u64);
            let x = rng.vec(n * c, 2.0);
            let w: Vec<f32> = rng.vec(c, 0.5).iter().map(|v| v + 1.0).collect();
            let dy = rng.vec(n * c, 1.0);
            let acc = rng.vec(n * c, 1.0);
            let (tx, tw, tdy) = (tensor("x", &x, &[n, c]), tensor("w", &w, &[c]), tensor("dy", &dy, &[n, c]));
            let out = Tensor::zeros(g, "out", &[n, c], DType::F32).unwrap();
            let rstd = Tensor::zeros(g, "rstd", &[n], DType::F32).unwrap();
            let dx = tensor("dx", &acc, &[n, c]);
            let mut prog = Program::new(g);
            ops::rmsnorm_forward(&mut prog, &out, &rstd, &tx, &tw, n, c, 1e-5).unwrap();
            ops::rmsnorm_backward(&mut prog, &dx, &tdy, &tx, &rstd, &tw, n, c).unwrap();
            g.submit(&prog, None);
            let (want, want_rstd) = cpu::rmsnorm_forward(&x, &w, n, c, 1e-5);
            assert_close(&format!("{family:?} rmsnorm out"), &read_from(g, &out), &want, F32);
            assert_close(&format!("{family:?} rmsnorm rstd"), &read_from(g, &rstd), &want_rstd, F32);
            let dwant: Vec<f32> =
                cpu::rmsnorm_backward(&dy, &x, &w, n, c, 1e-5).iter().zip(&acc).map(|(d, a)| d + a).collect();
            assert_close(&format!("{family:?} rmsnorm dinp (accumulated)"), &read_from(g, &dx), &dwant, F32);
        }
    }
}

#[test]
fn embedding_gathers_rows_across_vocabulary_parts() {
    let g = gpu();
    // One part, then parts of 64 rows with a short last one (ids in each part and at the ends).
    for &(v, c, part_rows) in &[(11, 20, 11), (150, 20, 64)] {
        let wte = Rng::new(3).vec(v * c, 1.0);
        let ids: Vec<u32> = vec![0, 10, 3, 3, 7, v as u32 - 1, (v as u32 - 1) / 2, 64.min(v as u32 - 1)];
        let tw = SplitTensor::zeros_in_parts(g, "wte", v, c, part_rows).unwrap();
        tw.write_f32_at(g, 0, &wte).unwrap();
        assert_eq!(tw.num_parts(), v.div_ceil(part_rows));
        let tids = Tensor::zeros(g, "ids", &[ids.len()], DType::U32).unwrap();
        tids.write_u32(g, &ids).unwrap();
        let out = Tensor::zeros(g, "out", &[ids.len(), c], DType::F32).unwrap();
        let mut prog = Program::new(g);
        ops::embedding_forward(&mut prog, &out, &tids, &tw).unwrap();
        g.submit(&prog, None);
        let want: Vec<f32> = ids.iter().flat_map(|&i| wte[i as usize * c..(i as usize + 1) * c].to_vec()).collect();
        assert_close("embedding", &read(&out), &want, F32);
        assert_eq!(pollster::block_on(tw.read_f32(g)).unwrap(), wte, "split tensor read back");
    }
}

#[test]
fn rope_forward_and_backward() {
    let g = gpu();
    let (n, nh, hd, max_t) = (13, 3, 8, 16);
    let mut rng = Rng::new(5);
    let x = rng.vec(n * nh * hd, 1.0);
    let cos: Vec<f32> = (0..max_t * hd / 2).map(|i| (i as f32 * 0.37).cos()).collect();
    let sin: Vec<f32> = (0..max_t * hd / 2).map(|i| (i as f32 * 0.37).sin()).collect();
    let pos: Vec<u32> = (0..n as u32).map(|i| (i * 7) % max_t as u32).collect();
    let tx = f32_tensor("x", &x);
    let tpos = Tensor::zeros(g, "pos", &[n], DType::U32).unwrap();
    tpos.write_u32(g, &pos).unwrap();
    let (tc, ts) = (f32_tensor("cos", &cos), f32_tensor("sin", &sin));
    let mut prog = Program::new(g);
    ops::rope_forward(&mut prog, &tx, &tc, &ts, &tpos, nh, hd).unwrap();
    g.submit(&prog, None);
    let mut want = x.clone();
    cpu::rope(&mut want, &cos, &sin, &pos, nh, hd, false);
    assert_close("rope forward", &read(&tx), &want, F32);
    let mut prog = Program::new(g);
    ops::rope_backward(&mut prog, &tx, &tc, &ts, &tpos, nh, hd).unwrap();
    g.submit(&prog, None);
    cpu::rope(&mut want, &cos, &sin, &pos, nh, hd, true);
    assert_close("rope backward (the transpose rotation)", &read(&tx), &want, F32);
    assert_close("rope round trip", &want, &x, F32);
}

/// Segment ids (B, T) for packed rows: runs of 1, 3, 2, 5, 4, ... tokens, counted per row.
fn packed_segments(b: usize, t: usize) -> Vec<u32> {
    let lens = [1, 3, 2, 5, 4, 7];
    let mut seg = Vec::with_capacity(b * t);
    for row in 0..b {
        let (mut id, mut left) = (0u32, lens[row % lens.len()]);
        for _ in 0..t {
            if left == 0 {
                id += 1;
                left = lens[(row + id as usize) % lens.len()];
            }
            seg.push(id);
            left -= 1;
        }
    }
    seg
}

/// Attention forward and backward against the CPU in both kernel families (one invocation per
/// row, and `attention_tiled.wgsl`'s workgroups of rows), over grouped and plain heads, head
/// dims that are and are not powers of two in vec4s, and rows packed with several examples.
#[test]
fn attention_forward_and_backward() {
    for family in [KernelFamily::Cpu, KernelFamily::Tiled] {
        let g = family_gpu(family);
        let tensor = |name: &str, data: &[f32]| Tensor::from_f32(g, name, &[data.len()], data).unwrap();
        for &(b, t, nh, nkv, hd) in &[
            (1, 1, 1, 1, 4),
            (2, 5, 4, 2, 8),
            (1, 67, 3, 1, 16),
            (3, 9, 6, 6, 12),
            (1, 4, 2, 1, 128),
            (2, 70, 4, 2, 64),
        ] {
            for packed in [false, true] {
                let s = AttentionShape { b, t, nh, nkv, hd };
                let mut rng = Rng::new((b * 100 + t * 10 + nh) as u64);
                let q = rng.vec(b * t * nh * hd, 1.0);
                let k = rng.vec(b * t * nkv * hd, 1.0);
                let v = rng.vec(b * t * nkv * hd, 1.0);
                let dout = rng.vec(b * t * nh * hd, 1.0);
                let seg = if packed { packed_segments(b, t) } else { vec![0; b * t] };
                let (tq, tk, tv, tdo) = (tensor("q", &q), tensor("k", &k), tensor("v", &v), tensor("do", &dout));
                let tseg = Tensor::zeros(g, "seg", &[b * t], DType::U32).unwrap();
                tseg.write_u32(g, &seg).unwrap();
                let out = Tensor::zeros(g, "out", &[q.len()], DType::F32).unwrap();
                let stats = Tensor::zeros(g, "stats", &[2, b, nh, t], DType::F32).unwrap();
                let dq = Tensor::zeros(g, "dq", &[q.len()], DType::F32).unwrap();
                let dk = Tensor::zeros(g, "dk", &[k.len()], DType::F32).unwrap();
                let dv = Tensor::zeros(g, "dv", &[v.len()], DType::F32).unwrap();
                // Each query head's share of dk and dv, in scratch larger than it needs (as a plan's).
                let heads = [0, 1].map(|_| Tensor::zeros(g, "heads", &[q.len() + 8], DType::F32).unwrap());
                let heads = (&heads[0], &heads[1]);
                let mut prog = Program::new(g);
                ops::attention_forward(&mut prog, &out, &stats, &tq, &tk, &tv, &tseg, s).unwrap();
                ops::attention_backward(&mut prog, &dq, &dk, &dv, heads, &stats, &tdo, &out, &tq, &tk, &tv, &tseg, s)
                    .unwrap();
                g.submit(&prog, None);
                let (want, probs) = cpu::attention_forward(&q, &k, &v, &seg, b, t, nh, nkv, hd);
                let (wdq, wdk, wdv) = cpu::attention_backward(&dout, &q, &k, &v, &probs, b, t, nh, nkv, hd);
                let case = format!("{family:?} b={b} t={t} nh={nh} nkv={nkv} hd={hd} packed={packed}");
                assert_close(&format!("attention out {case}"), &read_from(g, &out), &want, F32);
                assert_close(&format!("attention dq {case}"), &read_from(g, &dq), &wdq, F32);
                assert_close(&format!("attention dk {case}"), &read_from(g, &dk), &wdk, F32);
                assert_close(&format!("attention dv {case}"), &read_from(g, &dv), &wdv, F32);
            }
        }
    }
}

#[test]
fn swiglu_forward_and_backward() {
    let g = gpu();
    let n = 1000;
    let mut rng = Rng::new(9);
    let (gv, uv, dh) = (rng.vec(n, 4.0), rng.vec(n, 2.0), rng.vec(n, 1.0));
    let (tg, tu, tdh) = (f32_tensor("g", &gv), f32_tensor("u", &uv), f32_tensor("dh", &dh));
    let h = Tensor::zeros(g, "h", &[n], DType::F32).unwrap();
    let dg = Tensor::zeros(g, "dg", &[n], DType::F32).unwrap();
    let du = Tensor::zeros(g, "du", &[n], DType::F32).unwrap();
    let mut prog = Program::new(g);
    ops::swiglu_forward(&mut prog, &h, &tg, &tu).unwrap();
    ops::swiglu_backward(&mut prog, &dg, &du, &tdh, &tg, &tu).unwrap();
    g.submit(&prog, None);
    assert_close("swiglu h", &read(&h), &cpu::swiglu_forward(&gv, &uv), F32);
    let (wdg, wdu) = cpu::swiglu_backward(&dh, &gv, &uv);
    assert_close("swiglu dg", &read(&dg), &wdg, F32);
    assert_close("swiglu du", &read(&du), &wdu, F32);
}

#[test]
fn add_bias_and_add_inplace() {
    let g = gpu();
    let (rows, w) = (7, 12);
    let mut rng = Rng::new(11);
    let (x, bias, y) = (rng.vec(rows * w, 1.0), rng.vec(w, 1.0), rng.vec(rows * w, 1.0));
    let tx = f32_tensor("x", &x);
    let mut prog = Program::new(g);
    ops::add_bias(&mut prog, &tx, &f32_tensor("bias", &bias)).unwrap();
    ops::add_inplace(&mut prog, &tx, &f32_tensor("y", &y)).unwrap();
    g.submit(&prog, None);
    let want: Vec<f32> = (0..rows * w).map(|i| x[i] + bias[i % w] + y[i]).collect();
    assert_close("add", &read(&tx), &want, F32);
}

#[test]
fn dropout_keeps_the_expected_fraction_with_one_mask() {
    let g = gpu();
    let n = 20000;
    let p = 0.25;
    let ones = vec![1.0f32; n];
    let step = step_tensor(gpu(), StepParams { dropout_seed: 1234, ..Default::default() });
    let (a, b) = (Tensor::zeros(g, "a", &[n], DType::F32).unwrap(), Tensor::zeros(g, "b", &[n], DType::F32).unwrap());
    let c = Tensor::zeros(g, "c", &[n], DType::F32).unwrap();
    let mut prog = Program::new(g);
    ops::dropout(&mut prog, &a, &f32_tensor("ones", &ones), &step, p, 3).unwrap();
    ops::dropout(&mut prog, &b, &f32_tensor("ones", &ones), &step, p, 3).unwrap();
    ops::dropout(&mut prog, &c, &f32_tensor("ones", &ones), &step, p, 4).unwrap();
    g.submit(&prog, None);
    let (a, b, c) = (read(&a), read(&b), read(&c));
    assert_eq!(a, b, "the same seed and stream give the same mask");
    assert_ne!(a, c, "another stream gives another mask");
    let kept = a.iter().filter(|&&v| v != 0.0).count() as f32 / n as f32;
    assert!((kept - 0.75).abs() < 0.015, "kept fraction {kept}");
    assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6), "kept values are scaled by 1/(1-p)");
}

/// The fused cross-entropy in both kernel families (the tiled family's row reductions use
/// subgroup operations where offered).
#[test]
fn cross_entropy_loss_and_gradient_over_vocabulary_blocks() {
    for family in [KernelFamily::Cpu, KernelFamily::Tiled] {
        cross_entropy_case(family_gpu(family));
    }
}

fn cross_entropy_case(g: &weblora::gpu::Gpu) {
    // (rows, V, block sizes): one block, then blocks of unequal sizes with the online log-sum-exp.
    let cases: &[(usize, usize, &[usize])] =
        &[(1, 5, &[5]), (9, 96, &[96]), (9, 96, &[40, 56]), (4, 1000, &[1, 998, 1]), (3, 4099, &[2048, 1024, 1027])];
    for &(rows, v, sizes) in cases {
        let mut rng = Rng::new(rows as u64 * 7 + v as u64);
        let logits = rng.vec(rows * v, 5.0);
        let targets: Vec<i32> = (0..rows).map(|r| if r % 4 == 1 { -100 } else { rng.below(v as u32) as i32 }).collect();
        let count = targets.iter().filter(|&&t| t >= 0).count().max(1);
        let inv = 1.0 / count as f32;
        let mut blocks = Vec::new();
        let mut v0 = 0;
        for &vb in sizes {
            let part: Vec<f32> = (0..rows).flat_map(|r| logits[r * v + v0..r * v + v0 + vb].to_vec()).collect();
            blocks.push((v0, Tensor::from_f32(g, "logits", &[rows, vb], &part).unwrap()));
            v0 += vb;
        }
        let tt = Tensor::zeros(g, "targets", &[rows], DType::I32).unwrap();
        tt.write_i32(g, &targets).unwrap();
        let losses = Tensor::zeros(g, "losses", &[rows], DType::F32).unwrap();
        let ce = Tensor::zeros(g, "ce stats", &[rows, ops::CE_STATS], DType::F32).unwrap();
        let stats = Tensor::zeros(g, "stats", &[ops::STATS_LEN], DType::F32).unwrap();
        let step = step_tensor(g, StepParams { inv_count: inv, ..Default::default() });
        let mut prog = Program::new(g);
        for (v0, tl) in &blocks {
            ops::cross_entropy_forward(&mut prog, &ce, &losses, tl, &tt, rows, *v0, v).unwrap();
        }
        for (v0, tl) in &blocks {
            ops::cross_entropy_backward(&mut prog, tl, &ce, &tt, &step, rows, *v0, v).unwrap();
        }
        ops::loss_sum(&mut prog, &stats, &losses, &step).unwrap();
        g.submit(&prog, None);
        let (wl, wd) = cpu::cross_entropy(&logits, &targets, v, inv);
        assert_close("ce losses", &read_from(g, &losses), &wl, F32);
        let mut got = vec![0.0; rows * v];
        for (v0, tl) in &blocks {
            let vb = tl.shape()[1];
            for (r, values) in read_from(g, tl).chunks(vb).enumerate() {
                got[r * v + v0..][..vb].copy_from_slice(values);
            }
        }
        assert_close("ce dlogits", &got, &wd, F32);
        let mean: f32 = wl.iter().sum::<f32>() * inv;
        assert_close("mean loss", &read_from(g, &stats)[..1], &[mean], F32);
    }
}

#[test]
fn grad_norm_clip_and_adamw() {
    let g = gpu();
    for &(n, max_norm) in &[(3usize, 0.0f32), (1000, 1.0), (70001, 0.5)] {
        let mut rng = Rng::new(n as u64);
        let (p0, grads) = (rng.vec(n, 1.0), rng.vec(n, 0.1));
        let (m0, v0): (Vec<f32>, Vec<f32>) = (rng.vec(n, 0.01), rng.vec(n, 0.001).iter().map(|x| x.abs()).collect());
        let (tp, tm, tv, tg) =
            (f32_tensor("p", &p0), f32_tensor("m", &m0), f32_tensor("v", &v0), f32_tensor("g", &grads));
        let stats = Tensor::zeros(g, "stats", &[ops::STATS_LEN], DType::F32).unwrap();
        let partials = Tensor::zeros(g, "partials", &[ops::PARTIALS], DType::F32).unwrap();
        let (lr, b1, b2, eps, wd, t): (f32, f32, f32, f32, f32, i32) = (1e-2, 0.9, 0.999, 1e-8, 0.01, 3);
        let step = step_tensor(
            gpu(),
            StepParams {
                lr,
                bias_correction1: 1.0 - b1.powi(t),
                bias_correction2_sqrt: (1.0 - b2.powi(t)).sqrt(),
                ..Default::default()
            },
        );
        let hp = ops::AdamwParams { beta1: b1, beta2: b2, eps, weight_decay: wd };
        let mut prog = Program::new(g);
        ops::grad_norm(&mut prog, &stats, &partials, &tg, max_norm).unwrap();
        ops::adamw(&mut prog, &tp, &tm, &tv, &tg, &stats, &step, hp).unwrap();
        g.submit(&prog, None);
        let norm = grads.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt() as f32;
        let clip = if max_norm > 0.0 { (max_norm / (norm + 1e-6)).min(1.0) } else { 1.0 };
        assert_close("grad norm and clip", &read(&stats)[1..3], &[norm, clip], F32);
        let (mut p, mut m, mut v) = (p0.clone(), m0.clone(), v0.clone());
        cpu::adamw(&mut p, &mut m, &mut v, &grads, clip, lr, b1, b2, eps, wd, t);
        assert_close("adamw m", &read(&tm), &m, F32);
        assert_close("adamw v", &read(&tv), &v, F32);
        assert_close("adamw params", &read(&tp), &p, F32);
    }
}

/// Lavapipe ends any shader loop after 65535 iterations per invocation, which would cut the
/// attention's sums short past about 1,800 tokens (HD = 64), in backward as in forward: such
/// shapes are refused there, naming the most tokens that fit.
/// Elsewhere (`loop_limit` is `None`) they are recorded as usual.
#[test]
fn attention_refuses_sequences_past_the_loop_limit() {
    let g = gpu();
    let (t, nh, hd) = (2100, 7, 64);
    let s = AttentionShape { b: 1, t, nh, nkv: 1, hd };
    let zeros = |name: &str, n: usize| Tensor::zeros(g, name, &[n], DType::F32).unwrap();
    let (q, k, v, out) = (zeros("q", t * nh * hd), zeros("k", t * hd), zeros("v", t * hd), zeros("out", t * nh * hd));
    let (dq, dk, dv, dout) =
        (zeros("dq", t * nh * hd), zeros("dk", t * hd), zeros("dv", t * hd), zeros("dout", t * nh * hd));
    let seg = Tensor::zeros(g, "seg", &[t], DType::U32).unwrap();
    let stats = Tensor::zeros(g, "stats", &[2, 1, nh, t], DType::F32).unwrap();
    let mut prog = Program::new(g);
    let forward = ops::attention_forward(&mut prog, &out, &stats, &q, &k, &v, &seg, s);
    let heads = (&zeros("dk heads", t * nh * hd), &zeros("dv heads", t * nh * hd));
    let backward = ops::attention_backward(&mut prog, &dq, &dk, &dv, heads, &stats, &dout, &out, &q, &k, &v, &seg, s);
    match g.info.loop_limit {
        Some(limit) => {
            assert_eq!(limit, 65535, "{}", g.info);
            // Forward: 2100 keys × (2·16 + 5) + 4·16 + 16 iterations, and (65535 − 80) / 37 keys
            // fit; backward walks as many (dk and dv take one query head per invocation).
            let forward = forward.unwrap_err().to_string();
            assert!(
                forward.contains("need 77780 loop iterations") && forward.contains("at most 1769 tokens"),
                "{forward}"
            );
            let backward = backward.unwrap_err().to_string();
            assert!(
                backward.starts_with("attention_backward:") && backward.contains("at most 1769 tokens"),
                "{backward}"
            );
            assert!(prog.is_empty());
        }
        None => {
            forward.unwrap();
            backward.unwrap();
        }
    }
}
