//! The three matmul layouts and the mat-vec (M ≤ 4, for decoding) against the CPU reference, in
//! both kernel families, over shapes that are not multiples of the workgroup tiles (32×32 and
//! 64×64 with K steps of 16), the 4×4 register tile or the mat-vec's 64-column workgroup, with
//! and without accumulation.

use weblora::gpu::{KernelFamily, Program, Tensor};
use weblora::ops;
use weblora_tests::{assert_close, cpu, family_gpu, gpu, read_from, Rng, F32, F32_LONG};

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 4, 4),
    (3, 8, 12),
    (33, 20, 36),
    (64, 64, 64),
    (65, 36, 100),
    (7, 132, 8),
    (130, 12, 4),
    (17, 3, 20),
    (1, 65, 16),
    (130, 130, 132),
    (65, 68, 580),
];

/// Measured worst |err| in `long_k_matches_cpu` (values ~100): 5.8e-4 in the CPU family, 1.2e-3
/// in the tiled family.
const LONG_K: weblora_tests::Tolerance = weblora_tests::Tolerance { atol: 1e-2, rtol: 0.0 };

const FAMILIES: [KernelFamily; 2] = [KernelFamily::Cpu, KernelFamily::Tiled];

#[derive(Clone, Copy, Debug)]
enum Layout {
    Nt,
    Nn,
    Tn,
    Matvec,
}

fn check(family: KernelFamily, layout: Layout, m: usize, n: usize, k: usize, alpha: f32, beta: f32) {
    let g = family_gpu(family);
    assert_eq!(g.info.kernels, family);
    let mut rng = Rng::new((m * 1000 + n * 10 + k) as u64);
    let a = rng.vec(m * k, 1.0);
    let b = rng.vec(n * k, 1.0);
    let c0 = rng.vec(m * n, 1.0);
    let ta = Tensor::from_f32(g, "a", &[a.len()], &a).unwrap();
    let tb = Tensor::from_f32(g, "b", &[b.len()], &b).unwrap();
    let tc = Tensor::from_f32(g, "c", &[m, n], &c0).unwrap();
    let mut prog = Program::new(g);
    let mut want = c0.clone();
    match layout {
        Layout::Nt => {
            ops::matmul_nt(&mut prog, &tc, &ta, &tb, m, n, k, alpha, beta).unwrap();
            cpu::matmul_nt(&mut want, &a, &b, m, n, k, alpha, beta);
        }
        Layout::Nn => {
            ops::matmul_nn(&mut prog, &tc, &ta, &tb, m, n, k, alpha, beta).unwrap();
            cpu::matmul_nn(&mut want, &a, &b, m, n, k, alpha, beta);
        }
        Layout::Tn => {
            ops::matmul_tn(&mut prog, &tc, &ta, &tb, m, n, k, alpha, beta).unwrap();
            cpu::matmul_tn(&mut want, &a, &b, m, n, k, alpha, beta);
        }
        Layout::Matvec => {
            ops::matvec_nt(&mut prog, &tc, &ta, &tb, m, n, k, alpha, beta).unwrap();
            cpu::matmul_nt(&mut want, &a, &b, m, n, k, alpha, beta);
        }
    }
    g.submit(&prog, None);
    if k > ops::K_SPAN {
        // Sums of tens of thousands of terms of magnitude up to 1 (values ~100).
        let got = read_from(g, &tc);
        let err = got.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        println!("{family:?} {layout:?} m={m} n={n} k={k} beta={beta}: max |err| {err:.2e}");
        assert_close(&format!("{family:?} {layout:?} m={m} n={n} k={k} beta={beta}"), &got, &want, LONG_K);
        return;
    }
    // Measured as a fraction of the tolerance (|err| / (atol + rtol·|want|)), worst over the
    // shapes: 0.05–0.08 in both families, the tiled matmul_nn at 64×64×64 with alpha = −2 the most
    // (0.21: |err| 5.7e-6 on a value near zero); up to |err| 4.6e-5 at K = 580.
    let tol = if k > 64 { F32_LONG } else { F32 };
    assert_close(&format!("{family:?} {layout:?} m={m} n={n} k={k} beta={beta}"), &read_from(g, &tc), &want, tol);
}

#[test]
fn matmul_nt_matches_cpu() {
    for family in FAMILIES {
        for &(m, n, k) in SHAPES {
            check(family, Layout::Nt, m, n, k, 1.0, 0.0);
            check(family, Layout::Nt, m, n, k, 0.5, 1.0);
        }
    }
}

#[test]
fn matmul_nn_matches_cpu() {
    for family in FAMILIES {
        for &(m, n, k) in SHAPES {
            // (M, K)·(K, N): the vec4 dimensions are K and N; reuse each shape with N rounded.
            let n = n.next_multiple_of(4);
            check(family, Layout::Nn, m, n, k, 1.0, 0.0);
            check(family, Layout::Nn, m, n, k, -2.0, 1.0);
        }
    }
}

#[test]
fn matmul_tn_matches_cpu() {
    for family in FAMILIES {
        for &(m, n, k) in SHAPES {
            // (K, M)ᵀ·(K, N): the vec4 dimensions are M and N; reuse each shape with M, N rounded.
            let (m, n) = (m.next_multiple_of(4), n.next_multiple_of(4));
            check(family, Layout::Tn, m, n, k + 3, 1.0, 0.0);
            check(family, Layout::Tn, m, n, k, 0.25, 1.0);
        }
    }
}

#[test]
fn matvec_nt_matches_cpu() {
    // M = 1 (decoding) and 2..=4; N across several 64-column workgroups; K up to SmolLM2's FFN.
    // Measured worst |err|: 1.6e-5 at K = 1536, 9.5e-6 at K = 576, 4.8e-7 at K ≤ 36. The same
    // kernel in both families.
    for family in FAMILIES {
        for (m, n, k) in [(1, 1, 4), (1, 130, 100), (1, 200, 1536), (2, 8, 12), (3, 65, 36), (4, 131, 576)] {
            check(family, Layout::Matvec, m, n, k, 1.0, 0.0);
            check(family, Layout::Matvec, m, n, k, 0.5, 1.0);
        }
    }
}

/// Products whose K is longer than one dispatch walks ([`ops::K_SPAN`]; the CPU family's dy·W
/// walks spans of 2048): the head's input gradient reduces over a vocabulary part (~76K for Qwen2's vocabulary in two
/// parts). On lavapipe one dispatch over all of such a K came back cut short (the CPU family's
/// tn past K = 65535, the tiled family past ~58000).
#[test]
fn long_k_matches_cpu() {
    for family in FAMILIES {
        check(family, Layout::Nn, 10, 256, 75968, 1.0, 0.0);
        check(family, Layout::Nn, 10, 8, 2 * ops::K_SPAN + 20, -1.0, 1.0);
        check(family, Layout::Nt, 4, 5, 65520, 1.0, 0.0);
        check(family, Layout::Tn, 8, 4, 70001, 0.5, 1.0);
    }
}

/// Products the tiled family splits along K ([`ops::split_k`]): few tiles of C and a long K, as
/// the head's input gradient (64 rows) and LoRA's rank-wide gradients have. The partial products
/// land in the program's scratch and one more dispatch sums them with alpha and beta; the last
/// slice is shorter where K is not a multiple of the slice. Both families, against the CPU.
#[test]
fn split_k_products_match_cpu() {
    let shapes: [(Layout, usize, usize, usize); 4] = [
        (Layout::Nn, 64, 576, 4100),
        (Layout::Tn, 8, 576, 1024),
        (Layout::Tn, 1536, 8, 1032),
        (Layout::Nt, 1, 68, 3076),
    ];
    for (layout, m, n, k) in shapes {
        let split = ops::split_k(m.div_ceil(64) * n.div_ceil(64), m * n, k);
        assert!(
            split.is_some_and(|(slices, len)| slices > 1 && len % 16 == 0 && (slices - 1) * len < k),
            "{m}×{n}×{k}"
        );
        for family in FAMILIES {
            check(family, layout, m, n, k, 1.0, 0.0);
            check(family, layout, m, n, k, -0.5, 1.0);
        }
    }
    // Enough tiles, or too short a K, run one workgroup per tile.
    assert_eq!(ops::split_k(144, 1024 * 576, 576), None);
    assert_eq!(ops::split_k(4, 64 * 64, 200), None);
}

#[test]
fn matmul_rejects_bad_shapes() {
    let g = gpu();
    let t = Tensor::zeros(g, "t", &[64], weblora::gpu::DType::F32).unwrap();
    let mut prog = Program::new(g);
    let err = ops::matmul_nt(&mut prog, &t, &t, &t, 4, 4, 6, 1.0, 0.0).unwrap_err();
    assert!(err.to_string().contains("multiple of 4"), "{err}");
    let err = ops::matmul_nn(&mut prog, &t, &t, &t, 4, 8, 8, 1.0, 0.0).unwrap_err();
    assert!(err.to_string().contains("elements"), "{err}");
    let err = ops::matvec_nt(&mut prog, &t, &t, &t, 4, 4, 6, 1.0, 0.0).unwrap_err();
    assert!(err.to_string().contains("multiple of 4"), "{err}");
    let err = ops::matvec_nt(&mut prog, &t, &t, &t, 8, 8, 8, 1.0, 0.0).unwrap_err();
    assert_eq!(err.to_string(), "matvec_nt: output (8, 8): need 1 ≤ M ≤ 4 and N > 0");
    assert!(prog.is_empty());
}
