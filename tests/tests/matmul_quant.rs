//! Matmuls with a frozen weight kept in its GGML format (f16, bf16, Q8_0, Q4_0, Q4_1, Q4_K,
//! Q6_K), forward (x·Wᵀ), its mat-vec for decoding (M ≤ 4) and input gradient (dy·W), against the
//! CPU matmul over `io::ggml`'s dequantization of the same bytes; the embedding gather from
//! vocabulary parts of each type; products over a weight split by output rows; the dequantized
//! values themselves, exactly; the memory the weights take on the GPU; and the errors of bad
//! shapes.

use half::{bf16, f16};
use weblora::gpu::KernelFamily;
use weblora::gpu::{DType, Gpu, Program, QuantTensor, SplitTensor, Tensor};
use weblora::io::ggml::{dequantize_to_vec, GgmlType};
use weblora::ops;
use weblora_tests::{assert_close, cpu, family_gpu, gpu, read, read_from, Rng, F32, F32_LONG};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// y (M, N) = alpha · x (M, K) · W (N, K)ᵀ + beta · y
    Nt,
    /// dx (M, K) = alpha · dy (M, N) · W (N, K) + beta · dx
    Nn,
    /// As Nt, M ≤ 4: the mat-vec kernels
    Matvec,
}

/// Random GGML bytes of a (rows, cols) tensor: random quants, and scales drawn so that the
/// values are of order one.
fn random_ggml(rng: &mut Rng, ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let n = rows * cols;
    if ty == GgmlType::F16 {
        return (0..n).flat_map(|_| f16::from_f32(rng.uniform()).to_le_bytes()).collect();
    }
    if ty == GgmlType::BF16 {
        return (0..n).flat_map(|_| bf16::from_f32(rng.uniform()).to_le_bytes()).collect();
    }
    let bb = ty.block_bytes() as usize;
    let mut bytes: Vec<u8> = (0..ty.bytes_for(n as u64).unwrap()).map(|_| rng.below(256) as u8).collect();
    // (byte offset, magnitude) of each f16 field: about 1 / (largest quant · largest scale).
    let fields: &[(usize, f32)] = match ty {
        GgmlType::Q8_0 => &[(0, 1.0 / 127.0)],
        GgmlType::Q4_0 => &[(0, 1.0 / 8.0)],
        GgmlType::Q4_1 => &[(0, 1.0 / 8.0), (2, 1.0)],
        GgmlType::Q4_K => &[(0, 1.0 / 500.0), (2, 1.0 / 63.0)],
        GgmlType::Q6_K => &[(208, 1.0 / 2000.0)],
        _ => unreachable!(),
    };
    for block in bytes.chunks_exact_mut(bb) {
        for &(at, scale) in fields {
            let v = f16::from_f32(rng.uniform() * scale).to_le_bytes();
            block[at..at + 2].copy_from_slice(&v);
        }
    }
    bytes
}

/// Runs one layout on the GPU; returns (got, expected from the CPU).
fn run(
    family: KernelFamily,
    layout: Layout,
    ty: GgmlType,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    beta: f32,
) -> (Vec<f32>, Vec<f32>) {
    let g = family_gpu(family);
    let mut rng = Rng::new((m * 7919 + n * 131 + k) as u64 ^ ty.id() as u64);
    let bytes = random_ggml(&mut rng, ty, n, k);
    let w = QuantTensor::from_ggml(g, "w", ty, n, k, &bytes).unwrap();
    let wf = dequantize_to_vec("w", ty, &bytes, n * k).unwrap();
    let (rows_in, cols_out) = match layout {
        Layout::Nt | Layout::Matvec => (k, n),
        Layout::Nn => (n, k),
    };
    let a = rng.vec(m * rows_in, 1.0);
    let c0 = rng.vec(m * cols_out, 1.0);
    let ta = Tensor::from_f32(g, "a", &[m, rows_in], &a).unwrap();
    let tc = Tensor::from_f32(g, "c", &[m, cols_out], &c0).unwrap();
    let mut prog = Program::new(g);
    let mut want = c0;
    match layout {
        Layout::Nt => {
            ops::matmul_nt_quant(&mut prog, &tc, &ta, &w, m, alpha, beta).unwrap();
            cpu::matmul_nt(&mut want, &a, &wf, m, n, k, alpha, beta);
        }
        Layout::Nn => {
            ops::matmul_nn_quant(&mut prog, &tc, &ta, &w, m, alpha, beta).unwrap();
            cpu::matmul_nn(&mut want, &a, &wf, m, k, n, alpha, beta);
        }
        Layout::Matvec => {
            ops::matvec_nt_quant(&mut prog, &tc, &ta, &w, m, alpha, beta).unwrap();
            cpu::matmul_nt(&mut want, &a, &wf, m, n, k, alpha, beta);
        }
    }
    g.submit(&prog, None);
    (read_from(g, &tc), want)
}

/// (M, N, K) with M and N off the register tiles (8×4 forward, 4×8 backward) and the tiled
/// family's 64×64, across several workgroups; K one, two and three blocks, and SmolLM2's 576
/// (512 for the K-quants). The last shape has a long N and few output tiles, so the tiled
/// family splits the input gradient's contraction (N) into slices and sums them. The mat-vec
/// takes M = 1 (decoding) to 4, with N across its 64-column workgroups.
fn shapes(layout: Layout, ty: GgmlType) -> Vec<(usize, usize, usize)> {
    let b = QuantTensor::col_multiple(ty).max(32);
    let long = if b == 256 { 512 } else { 576 };
    match layout {
        // Measured worst |err| of the mat-vec: 1.1e-5 (Q6_K, K = 768), 4.8e-7 at K ≤ 64.
        Layout::Matvec => vec![(1, 1, b), (1, 130, long), (2, 7, 2 * b), (3, 66, 3 * b), (4, 131, b)],
        _ => vec![(1, 1, b), (5, 7, 2 * b), (33, 37, 3 * b), (3, 66, b), (70, 35, long), (9, 1030, 2 * b)],
    }
}

/// Both kernel families for the products (the register tiles and the workgroup tiles); the
/// mat-vec is one kernel in both.
fn check_type(ty: GgmlType) {
    for layout in [Layout::Nt, Layout::Nn, Layout::Matvec] {
        let families = if layout == Layout::Matvec { &FAMILIES[..1] } else { &FAMILIES[..] };
        for &family in families {
            for (m, n, k) in shapes(layout, ty) {
                for (alpha, beta) in [(1.0, 0.0), (-0.5, 1.0)] {
                    let (got, want) = run(family, layout, ty, (m, n, k), alpha, beta);
                    let tol = if k.max(n) > 64 { F32_LONG } else { F32 };
                    let what = format!("{} {family:?} {layout:?} m={m} n={n} k={k} beta={beta}", ty.name());
                    assert_close(&what, &got, &want, tol);
                }
            }
        }
    }
}

const FAMILIES: [KernelFamily; 2] = [KernelFamily::Cpu, KernelFamily::Tiled];

#[test]
fn matmul_q8_0_matches_cpu() {
    check_type(GgmlType::Q8_0);
}

#[test]
fn matmul_q4_0_matches_cpu() {
    check_type(GgmlType::Q4_0);
}

#[test]
fn matmul_q4_1_matches_cpu() {
    check_type(GgmlType::Q4_1);
}

#[test]
fn matmul_q4_k_matches_cpu() {
    check_type(GgmlType::Q4_K);
}

#[test]
fn matmul_q6_k_matches_cpu() {
    check_type(GgmlType::Q6_K);
}

#[test]
fn matmul_f16_matches_cpu() {
    check_type(GgmlType::F16);
}

#[test]
fn matmul_bf16_matches_cpu() {
    check_type(GgmlType::BF16);
}

/// The embedding gather from a table kept in each type, in parts of 64 rows with a short last
/// one: every row equals its dequantized values exactly (a copy, no arithmetic but the scale's).
#[test]
fn embedding_gathers_dequantized_rows_across_parts() {
    let g = gpu();
    let v = 150;
    let ids: Vec<u32> = vec![0, 149, 63, 64, 127, 128, 5, 5, 100];
    let tids = Tensor::zeros(g, "ids", &[ids.len()], DType::U32).unwrap();
    tids.write_u32(g, &ids).unwrap();
    for ty in QuantTensor::TYPES {
        let c = QuantTensor::col_multiple(ty).max(32) * 2;
        let bytes = random_ggml(&mut Rng::new(ty.id() as u64), ty, v, c);
        let table = dequantize_to_vec("wte", ty, &bytes, v * c).unwrap();
        let wte = SplitTensor::zeros_in_parts_as(g, "wte", ty, v, c, 64).unwrap();
        wte.write_ggml(g, "wte", ty, &bytes).unwrap();
        assert_eq!(wte.num_parts(), 3);
        let out = Tensor::zeros(g, "out", &[ids.len(), c], DType::F32).unwrap();
        let mut prog = Program::new(g);
        ops::embedding_forward(&mut prog, &out, &tids, &wte).unwrap();
        g.submit(&prog, None);
        let want: Vec<f32> = ids.iter().flat_map(|&i| table[i as usize * c..][..c].to_vec()).collect();
        let got = read(&out);
        let bad = got.iter().zip(&want).position(|(a, b)| !within_one_ulp(*a, *b));
        assert!(
            bad.is_none(),
            "{} gather: element {bad:?}: {:?} vs {:?}",
            ty.name(),
            bad.map(|i| got[i]),
            bad.map(|i| want[i])
        );
    }
}

/// Whether two floats are at most one unit in the last place apart (the kernels may fuse
/// `d·q + m` into one rounding where the CPU rounds twice).
fn within_one_ulp(got: f32, want: f32) -> bool {
    got == want || (got.to_bits() as i64 - want.to_bits() as i64).abs() <= 1 && got.signum() == want.signum()
}

/// With an identity x (or dy) the products read W itself: Wᵀ from the forward and the mat-vec,
/// W from the input gradient. Each value must be the CPU dequantization's.
#[test]
fn dequantized_values_are_exact() {
    for ty in QuantTensor::TYPES {
        let k = QuantTensor::col_multiple(ty).max(32) * 2;
        let n = 9;
        let mut rng = Rng::new(ty.id() as u64);
        let bytes = random_ggml(&mut rng, ty, n, k);
        let wf = dequantize_to_vec("w", ty, &bytes, n * k).unwrap();
        let g = gpu();
        let w = QuantTensor::from_ggml(g, "w", ty, n, k, &bytes).unwrap();
        for layout in [Layout::Nt, Layout::Nn, Layout::Matvec] {
            let m = if layout == Layout::Nn { n } else { k };
            let mut eye = vec![0.0; m * m];
            (0..m).for_each(|i| eye[i * m + i] = 1.0);
            let mut prog = Program::new(g);
            // The mat-vec takes the identity's rows in runs of 1 and 4 (its two paths).
            let runs: Vec<(usize, usize)> = match layout {
                Layout::Matvec => {
                    (0..m).step_by(5).flat_map(|r| [(r, 1), (r + 1, 4.min(m - r - 1))]).filter(|r| r.1 > 0).collect()
                }
                _ => vec![(0, m)],
            };
            let mut outs = vec![];
            for (r0, rows) in runs {
                let a = Tensor::from_f32(g, "eye", &[rows, m], &eye[r0 * m..(r0 + rows) * m]).unwrap();
                let c = Tensor::zeros(g, "c", &[rows * n * k / m], DType::F32).unwrap();
                match layout {
                    Layout::Nt => ops::matmul_nt_quant(&mut prog, &c, &a, &w, rows, 1.0, 0.0).unwrap(),
                    Layout::Nn => ops::matmul_nn_quant(&mut prog, &c, &a, &w, rows, 1.0, 0.0).unwrap(),
                    Layout::Matvec => ops::matvec_nt_quant(&mut prog, &c, &a, &w, rows, 1.0, 0.0).unwrap(),
                }
                outs.push(c);
            }
            g.submit(&prog, None);
            let got: Vec<f32> = outs.iter().flat_map(read).collect();
            for (i, &want) in wf.iter().enumerate() {
                let (row, col) = (i / k, i % k);
                let at = if layout == Layout::Nn { i } else { col * n + row };
                assert!(
                    within_one_ulp(got[at], want),
                    "{} {layout:?}: W[{row}, {col}]: got {} expected {want}",
                    ty.name(),
                    got[at]
                );
            }
        }
    }
}

/// Quantized weights take (about) their GGML size on the GPU: Q4 types about a quarter of f16.
#[test]
fn gpu_memory_stays_near_ggml_size() {
    let (n, k) = (64, 1536);
    let f16_bytes = (2 * n * k) as f64;
    for ty in QuantTensor::TYPES {
        let mut rng = Rng::new(1);
        let bytes = random_ggml(&mut rng, ty, n, k);
        let w = QuantTensor::from_ggml(gpu(), "w", ty, n, k, &bytes).unwrap();
        let ratio = w.gpu_bytes() as f64 / bytes.len() as f64;
        println!("{:<5} GGML {:>7} B  GPU {:>7} B  ×{ratio:.4}", ty.name(), bytes.len(), w.gpu_bytes());
        assert!(ratio <= 1.03, "{}: {} GPU bytes for {} GGML bytes", ty.name(), w.gpu_bytes(), bytes.len());
        if matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4_K) {
            assert!(w.gpu_bytes() as f64 <= 0.32 * f16_bytes, "{}: {} bytes", ty.name(), w.gpu_bytes());
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let g = gpu();
    // Columns not a whole number of blocks, wrong byte counts, types that have no kernel.
    let err = QuantTensor::from_ggml(g, "blk.0.attn_q.weight", GgmlType::Q4_1, 2, 48, &[0; 2 * 30]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("blk.0.attn_q.weight") && msg.contains("multiple of 32"), "{msg}");
    let err = QuantTensor::from_ggml(g, "w", GgmlType::Q4_K, 1, 256, &[0; 140]).unwrap_err();
    assert!(err.to_string().contains("144"), "{err}");
    let err = QuantTensor::from_ggml(g, "w", GgmlType::F16, 3, 12, &[0; 72]).unwrap_err();
    assert!(err.to_string().contains("multiple of 8"), "{err}");
    let err = QuantTensor::from_ggml(g, "w", GgmlType::Q5_0, 1, 32, &[0; 22]).unwrap_err();
    assert!(err.to_string().contains("Q5_0"), "{err}");
    assert!(QuantTensor::from_ggml(g, "w", GgmlType::Q8_0, 0, 32, &[]).is_err());

    // Activations whose sizes do not match M and W (N = 3, K = 64): the error names the op,
    // the tensor, its size and the size it should have.
    let w = QuantTensor::from_ggml(g, "w", GgmlType::Q8_0, 3, 64, &[0; 6 * 34]).unwrap();
    let t = |len: usize| Tensor::zeros(g, "t", &[len], DType::F32).unwrap();
    let mut prog = Program::new(g);
    let err = ops::matmul_nt_quant(&mut prog, &t(5 * 3), &t(5 * 63), &w, 5, 1.0, 0.0).unwrap_err();
    assert_eq!(err.to_string(), "matmul_nt_quant: x [315] has 315 elements, expected 320");
    let err = ops::matmul_nt_quant(&mut prog, &t(5 * 4), &t(5 * 64), &w, 5, 1.0, 0.0).unwrap_err();
    assert_eq!(err.to_string(), "matmul_nt_quant: y [20] has 20 elements, expected 15");
    let err = ops::matmul_nn_quant(&mut prog, &t(5 * 64), &t(5 * 2), &w, 5, 1.0, 0.0).unwrap_err();
    assert_eq!(err.to_string(), "matmul_nn_quant: dy [10] has 10 elements, expected 15");
    let err = ops::matmul_nn_quant(&mut prog, &t(0), &t(0), &w, 0, 1.0, 0.0).unwrap_err();
    assert!(err.to_string().contains("M = 0"), "{err}");
    let err = ops::matvec_nt_quant(&mut prog, &t(5 * 3), &t(5 * 64), &w, 5, 1.0, 0.0).unwrap_err();
    assert_eq!(err.to_string(), "matvec_nt_quant: M = 5 rows: the mat-vec takes at most 4");
    let err = ops::matvec_nt_quant(&mut prog, &t(3), &t(63), &w, 1, 1.0, 0.0).unwrap_err();
    assert_eq!(err.to_string(), "matvec_nt_quant: x [63] has 63 elements, expected 64");
    assert!(prog.is_empty());
}

/// `ops::row_sumsq` of `w` against the CPU's sum of squares of each row of `wf` (its values,
/// rows of `k`).
fn check_row_sumsq(g: &Gpu, what: &str, w: &weblora::gpu::Weight, wf: &[f32], k: usize) {
    let out = Tensor::zeros(g, "out", &[wf.len() / k], DType::F32).unwrap();
    let mut prog = Program::new(g);
    ops::row_sumsq(&mut prog, &out, w).unwrap();
    g.submit(&prog, None);
    let want: Vec<f32> = wf.chunks(k).map(|row| row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() as f32).collect();
    assert_close(what, &read_from(g, &out), &want, F32);
}

/// DoRA's ‖W‖² per row, for a weight of every type (f32 included) against the CPU's sum over
/// the dequantized values; 37 rows (not a workgroup multiple).
#[test]
fn row_sums_of_squares_match_the_cpu() {
    use weblora::gpu::Weight;
    let g = gpu();
    let types = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ];
    for ty in types {
        let (n, k) = (37, if matches!(ty, GgmlType::Q4_K | GgmlType::Q6_K) { 512 } else { 96 });
        let mut rng = Rng::new(ty.id() as u64 + 11);
        let (w, wf) = if ty == GgmlType::F32 {
            let wf = rng.vec(n * k, 1.0);
            (Weight::F32(Tensor::from_f32(g, "w", &[n, k], &wf).unwrap()), wf)
        } else {
            let bytes = random_ggml(&mut rng, ty, n, k);
            let w = QuantTensor::from_ggml(g, "w", ty, n, k, &bytes).unwrap();
            (Weight::Quant(w), dequantize_to_vec("w", ty, &bytes, n * k).unwrap())
        };
        check_row_sumsq(g, &format!("row_sumsq {}", ty.name()), &w, &wf, k);
    }
}

/// A projection split by output rows (`Weight::Split`, parts of 64 rows: 64, 64, 24): the
/// forward and its mat-vec, each part's product moved into its columns of y, the input gradient
/// summed over the parts' columns of dy, and ‖W‖² per row, in both kernel families, for an f32,
/// a 16-bit and a quantized weight, against the CPU over the whole weight.
#[test]
fn products_over_a_weight_split_by_rows_match_the_cpu() {
    use weblora::gpu::Weight;
    let (n, k) = (152, 96);
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0] {
        for family in FAMILIES {
            let g = family_gpu(family);
            let mut rng = Rng::new(ty.id() as u64 + 29);
            let split = SplitTensor::zeros_in_parts_as(g, "w", ty, n, k, 64).unwrap();
            let wf = if ty == GgmlType::F32 {
                let wf = rng.vec(n * k, 1.0);
                split.write_f32_at(g, 0, &wf).unwrap();
                wf
            } else {
                let bytes = random_ggml(&mut rng, ty, n, k);
                split.write_ggml(g, "w", ty, &bytes).unwrap();
                dequantize_to_vec("w", ty, &bytes, n * k).unwrap()
            };
            assert_eq!(split.num_parts(), 3);
            let w = Weight::Split(split);
            for (m, alpha, beta) in [(70, 1.0, 0.0), (70, -0.5, 1.0), (3, 1.0, 0.0), (3, -0.5, 1.0)] {
                let what = format!("split {} {family:?} m={m} beta={beta}", ty.name());
                // Forward: y (M, N) = alpha · x · Wᵀ + beta · y.
                let (x, y0) = (rng.vec(m * k, 1.0), rng.vec(m * n, 1.0));
                let (tx, ty_) =
                    (Tensor::from_f32(g, "x", &[m, k], &x).unwrap(), Tensor::from_f32(g, "y", &[m, n], &y0).unwrap());
                // Input gradient: dx (M, K) = alpha · dy · W + beta · dx.
                let (dy, dx0) = (rng.vec(m * n, 1.0), rng.vec(m * k, 1.0));
                let (tdy, tdx) = (
                    Tensor::from_f32(g, "dy", &[m, n], &dy).unwrap(),
                    Tensor::from_f32(g, "dx", &[m, k], &dx0).unwrap(),
                );
                let mut prog = Program::new(g);
                ops::frozen_nt(&mut prog, &ty_, &tx, &w, m, alpha, beta).unwrap();
                ops::frozen_nn(&mut prog, &tdx, &tdy, &w, m, alpha, beta).unwrap();
                g.submit(&prog, None);
                let (mut want_y, mut want_dx) = (y0, dx0);
                cpu::matmul_nt(&mut want_y, &x, &wf, m, n, k, alpha, beta);
                cpu::matmul_nn(&mut want_dx, &dy, &wf, m, k, n, alpha, beta);
                assert_close(&format!("{what} x·Wᵀ"), &read_from(g, &ty_), &want_y, F32_LONG);
                assert_close(&format!("{what} dy·W"), &read_from(g, &tdx), &want_dx, F32_LONG);
            }
            check_row_sumsq(g, &format!("split row_sumsq {} {family:?}", ty.name()), &w, &wf, k);
        }
    }
}
