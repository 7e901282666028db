//! The three matmul layouts against the CPU reference, over shapes that are not multiples of
//! the 32×32 workgroup tile or the 4×4 register tile, with and without accumulation.

use weblora::gpu::{Program, Tensor};
use weblora::ops;
use weblora_tests::{assert_close, cpu, gpu, read, Rng, F32, F32_LONG};

const SHAPES: &[(usize, usize, usize)] =
    &[(1, 4, 4), (3, 8, 12), (33, 20, 36), (64, 64, 64), (65, 36, 100), (7, 132, 8), (130, 12, 4)];

#[derive(Clone, Copy, Debug)]
enum Layout {
    Nt,
    Nn,
    Tn,
}

fn check(layout: Layout, m: usize, n: usize, k: usize, alpha: f32, beta: f32) {
    let g = gpu();
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
    }
    g.submit(&prog, None);
    let tol = if k > 64 { F32_LONG } else { F32 };
    assert_close(&format!("{layout:?} m={m} n={n} k={k} beta={beta}"), &read(&tc), &want, tol);
}

#[test]
fn matmul_nt_matches_cpu() {
    for &(m, n, k) in SHAPES {
        check(Layout::Nt, m, n, k, 1.0, 0.0);
        check(Layout::Nt, m, n, k, 0.5, 1.0);
    }
}

#[test]
fn matmul_nn_matches_cpu() {
    for &(m, n, k) in SHAPES {
        if n % 4 == 0 {
            check(Layout::Nn, m, n, k, 1.0, 0.0);
            check(Layout::Nn, m, n, k, -2.0, 1.0);
        }
    }
}

#[test]
fn matmul_tn_matches_cpu() {
    for &(m, n, k) in SHAPES {
        // (K, M)ᵀ·(K, N): the vec4 dimensions are M and N; reuse each shape with M, N rounded.
        let (m, n) = (m.next_multiple_of(4), n.next_multiple_of(4));
        check(Layout::Tn, m, n, k + 3, 1.0, 0.0);
        check(Layout::Tn, m, n, k, 0.25, 1.0);
    }
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
    assert!(prog.is_empty());
}
