//! Plain CPU versions of every kernel, accumulating in f64. Shapes as in `weblora::ops`.

/// c (M, N) = alpha · a (M, K) · b (N, K)ᵀ + beta · c
pub fn matmul_nt(c: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, k: usize, alpha: f32, beta: f32) {
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|x| a[i * k + x] as f64 * b[j * k + x] as f64).sum();
            c[i * n + j] = alpha * s as f32 + if beta == 0.0 { 0.0 } else { beta * c[i * n + j] };
        }
    }
}

/// c (M, N) = alpha · a (M, K) · b (K, N) + beta · c
pub fn matmul_nn(c: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, k: usize, alpha: f32, beta: f32) {
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|x| a[i * k + x] as f64 * b[x * n + j] as f64).sum();
            c[i * n + j] = alpha * s as f32 + if beta == 0.0 { 0.0 } else { beta * c[i * n + j] };
        }
    }
}

/// c (M, N) = alpha · a (K, M)ᵀ · b (K, N) + beta · c
pub fn matmul_tn(c: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, k: usize, alpha: f32, beta: f32) {
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|x| a[x * m + i] as f64 * b[x * n + j] as f64).sum();
            c[i * n + j] = alpha * s as f32 + if beta == 0.0 { 0.0 } else { beta * c[i * n + j] };
        }
    }
}

/// (out (N, C), rstd (N))
pub fn rmsnorm_forward(inp: &[f32], weight: &[f32], n: usize, c: usize, eps: f32) -> (Vec<f32>, Vec<f32>) {
    let mut out = vec![0.0; n * c];
    let mut rstd = vec![0.0; n];
    for r in 0..n {
        let x = &inp[r * c..(r + 1) * c];
        let ms: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / c as f64;
        let rs = 1.0 / (ms + eps as f64).sqrt();
        rstd[r] = rs as f32;
        for i in 0..c {
            out[r * c + i] = (weight[i] as f64 * x[i] as f64 * rs) as f32;
        }
    }
    (out, rstd)
}

/// dinp (N, C) of rmsnorm, recomputing rstd in f64.
pub fn rmsnorm_backward(dout: &[f32], inp: &[f32], weight: &[f32], n: usize, c: usize, eps: f32) -> Vec<f32> {
    let mut dinp = vec![0.0; n * c];
    for r in 0..n {
        let x = &inp[r * c..(r + 1) * c];
        let dy = &dout[r * c..(r + 1) * c];
        let ms: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / c as f64;
        let rs = 1.0 / (ms + eps as f64).sqrt();
        let dot: f64 = (0..c).map(|i| weight[i] as f64 * dy[i] as f64 * x[i] as f64).sum::<f64>() / c as f64;
        for i in 0..c {
            dinp[r * c + i] = (rs * weight[i] as f64 * dy[i] as f64 - x[i] as f64 * rs.powi(3) * dot) as f32;
        }
    }
    dinp
}

/// Rotate-half RoPE on x (N, NH, HD) with tables (maxT, HD/2); `inverse` rotates back.
pub fn rope(x: &mut [f32], cos: &[f32], sin: &[f32], pos: &[u32], nh: usize, hd: usize, inverse: bool) {
    let half = hd / 2;
    for (n, &p) in pos.iter().enumerate() {
        for h in 0..nh {
            let base = (n * nh + h) * hd;
            for d in 0..half {
                let c = cos[p as usize * half + d] as f64;
                let s = sin[p as usize * half + d] as f64 * if inverse { -1.0 } else { 1.0 };
                let (x1, x2) = (x[base + d] as f64, x[base + d + half] as f64);
                x[base + d] = (x1 * c - x2 * s) as f32;
                x[base + d + half] = (x2 * c + x1 * s) as f32;
            }
        }
    }
}

/// Causal GQA attention, q (B, T, NH, HD), k, v (B, T, NKV, HD), where query i attends to key
/// j when j ≤ i and both have the same segment id `seg` (B, T). Returns out and the
/// probabilities (B, NH, T, T) for the backward reference.
pub fn attention_forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    seg: &[u32],
    b: usize,
    t: usize,
    nh: usize,
    nkv: usize,
    hd: usize,
) -> (Vec<f32>, Vec<f64>) {
    let scale = 1.0 / (hd as f64).sqrt();
    let mut out = vec![0.0; b * t * nh * hd];
    let mut probs = vec![0.0; b * nh * t * t];
    let qi = |bb: usize, tt: usize, h: usize| ((bb * t + tt) * nh + h) * hd;
    let ki = |bb: usize, tt: usize, h: usize| ((bb * t + tt) * nkv + h) * hd;
    for bb in 0..b {
        for h in 0..nh {
            let hk = h / (nh / nkv);
            for i in 0..t {
                let seen = |j: usize| seg[bb * t + j] == seg[bb * t + i];
                let scores: Vec<f64> = (0..=i)
                    .map(|j| {
                        let s = (0..hd).map(|d| q[qi(bb, i, h) + d] as f64 * k[ki(bb, j, hk) + d] as f64).sum::<f64>();
                        if seen(j) {
                            s * scale
                        } else {
                            f64::NEG_INFINITY
                        }
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                for j in 0..=i {
                    let p = (scores[j] - m).exp() / z;
                    probs[((bb * nh + h) * t + i) * t + j] = p;
                    for d in 0..hd {
                        out[qi(bb, i, h) + d] += (p * v[ki(bb, j, hk) + d] as f64) as f32;
                    }
                }
            }
        }
    }
    (out, probs)
}

/// (dq, dk, dv) of causal GQA attention, from the forward's probabilities (zero where a query
/// does not see a key).
pub fn attention_backward(
    dout: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    probs: &[f64],
    b: usize,
    t: usize,
    nh: usize,
    nkv: usize,
    hd: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let scale = 1.0 / (hd as f64).sqrt();
    let mut dq = vec![0.0f64; q.len()];
    let mut dk = vec![0.0f64; k.len()];
    let mut dv = vec![0.0f64; v.len()];
    let qi = |bb: usize, tt: usize, h: usize| ((bb * t + tt) * nh + h) * hd;
    let ki = |bb: usize, tt: usize, h: usize| ((bb * t + tt) * nkv + h) * hd;
    for bb in 0..b {
        for h in 0..nh {
            let hk = h / (nh / nkv);
            for i in 0..t {
                let p = |j: usize| probs[((bb * nh + h) * t + i) * t + j];
                let dp: Vec<f64> = (0..=i)
                    .map(|j| (0..hd).map(|d| dout[qi(bb, i, h) + d] as f64 * v[ki(bb, j, hk) + d] as f64).sum())
                    .collect();
                let dsum: f64 = (0..=i).map(|j| p(j) * dp[j]).sum();
                for j in 0..=i {
                    let ds = p(j) * (dp[j] - dsum) * scale;
                    for d in 0..hd {
                        dv[ki(bb, j, hk) + d] += p(j) * dout[qi(bb, i, h) + d] as f64;
                        dq[qi(bb, i, h) + d] += ds * k[ki(bb, j, hk) + d] as f64;
                        dk[ki(bb, j, hk) + d] += ds * q[qi(bb, i, h) + d] as f64;
                    }
                }
            }
        }
    }
    let f = |x: Vec<f64>| x.into_iter().map(|v| v as f32).collect();
    (f(dq), f(dk), f(dv))
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub fn swiglu_forward(g: &[f32], u: &[f32]) -> Vec<f32> {
    g.iter().zip(u).map(|(&g, &u)| (g as f64 * sigmoid(g as f64) * u as f64) as f32).collect()
}

/// (dg, du)
pub fn swiglu_backward(dh: &[f32], g: &[f32], u: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut dg = vec![0.0; g.len()];
    let mut du = vec![0.0; g.len()];
    for i in 0..g.len() {
        let (x, s) = (g[i] as f64, sigmoid(g[i] as f64));
        dg[i] = (dh[i] as f64 * u[i] as f64 * s * (1.0 + x * (1.0 - s))) as f32;
        du[i] = (dh[i] as f64 * x * s) as f32;
    }
    (dg, du)
}

/// (losses (rows), dlogits (rows, V)) with dlogits scaled by `inv_count`; targets < 0 ignored.
pub fn cross_entropy(logits: &[f32], targets: &[i32], v: usize, inv_count: f32) -> (Vec<f32>, Vec<f32>) {
    let rows = targets.len();
    let mut losses = vec![0.0; rows];
    let mut dlogits = vec![0.0; rows * v];
    for r in 0..rows {
        let x = &logits[r * v..(r + 1) * v];
        let m = x.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let z: f64 = x.iter().map(|&l| (l as f64 - m).exp()).sum();
        let t = targets[r];
        if t < 0 {
            continue;
        }
        losses[r] = (z.ln() + m - x[t as usize] as f64) as f32;
        for i in 0..v {
            let p = (x[i] as f64 - m).exp() / z;
            dlogits[r * v + i] = ((p - if i == t as usize { 1.0 } else { 0.0 }) * inv_count as f64) as f32;
        }
    }
    (losses, dlogits)
}

/// One torch.optim.AdamW step (after clipping by `clip`) on params, m, v in place.
pub fn adamw(
    params: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grads: &[f32],
    clip: f32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    wd: f32,
    step: i32,
) {
    let bc1 = 1.0 - (beta1 as f64).powi(step);
    let bc2 = (1.0 - (beta2 as f64).powi(step)).sqrt();
    for i in 0..params.len() {
        let g = (grads[i] * clip) as f64;
        let mi = beta1 as f64 * m[i] as f64 + (1.0 - beta1 as f64) * g;
        let vi = beta2 as f64 * v[i] as f64 + (1.0 - beta2 as f64) * g * g;
        m[i] = mi as f32;
        v[i] = vi as f32;
        let p = params[i] as f64 * (1.0 - lr as f64 * wd as f64);
        params[i] = (p - lr as f64 / bc1 * mi / (vi.sqrt() / bc2 + eps as f64)) as f32;
    }
}
