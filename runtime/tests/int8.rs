//! The int8 kernels against the float ones on random shapes: odd sizes,
//! strides, groups, depthwise, TensorFlow's asymmetric `same` padding and
//! fused ReLU. Two tolerances:
//! - against the float kernel run on the dequantized operands (the same
//!   numbers the integers stand for), every output is within one step of
//!   the output scale: the i32 sums are exact, only the final rounding and
//!   float's own rounding differ;
//! - against the float kernel on the original operands, the error is within
//!   4 % of the largest output: the cost of 8-bit operands.
//!
//! And the AVX2 products equal the scalar ones exactly, bit for bit.

use netc_runtime::kernels::conv::{self, Geometry};
use netc_runtime::kernels::cpu::{self, Window};
use netc_runtime::kernels::int8::{self, Isa, Weights};
use netc_runtime::nn::same_pads;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn normal(rng: &mut SmallRng, n: usize) -> Vec<f32> {
    // Sum of uniforms: close enough to a bell, with no extra crate.
    (0..n)
        .map(|_| (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>())
        .collect()
}

fn max_abs(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// Symmetric per-row quantization of `w` (rows x k): values and scales.
fn per_row(w: &[f32], k: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::new();
    for row in w.chunks_exact(k) {
        let s = (max_abs(row) / 127.0).max(1e-12);
        q.extend(int8::quantize(row, s));
        scales.push(s);
    }
    (q, scales)
}

struct Case {
    g: Geometry,
    relu: bool,
}

fn isas() -> Vec<Isa> {
    let mut v = vec![Isa::Scalar];
    if Isa::detect() == Isa::Avx2 {
        v.push(Isa::Avx2);
    }
    v
}

fn check_conv(case: &Case, seed: u64) {
    let g = &case.g;
    let mut rng = SmallRng::seed_from_u64(seed);
    let k = g.cin / g.groups * g.kernel[0] * g.kernel[1];
    let x = normal(&mut rng, g.n * g.cin * g.h * g.w);
    let w = normal(&mut rng, g.cout * k);
    let bias = normal(&mut rng, g.cout);
    let reference = conv::forward(&x, &w, Some(&bias), g, case.relu);

    let sx = max_abs(&x) / 127.0;
    let xq = int8::quantize(&x, sx);
    let (wq, sw) = per_row(&w, k);
    let sy = max_abs(&conv::forward(&x, &w, Some(&bias), g, false)) / 127.0;
    let wide: Vec<i16> = wq.iter().map(|&v| v as i16).collect();
    let weights = Weights {
        rows: g.cout,
        k,
        values: &wide,
        bias: (0..g.cout)
            .map(|c| (bias[c] / (sx * sw[c])).round() as i32)
            .collect(),
        multiplier: sw.iter().map(|s| sx * s / sy).collect(),
        relu: case.relu,
        packed: None,
    };
    // The float kernel on exactly the numbers the integers stand for.
    let xd = int8::dequantize(&xq, sx);
    let wd: Vec<f32> = wq
        .iter()
        .enumerate()
        .map(|(i, &v)| v as f32 * sw[i / k])
        .collect();
    let bd: Vec<f32> = (0..g.cout)
        .map(|c| weights.bias[c] as f32 * sx * sw[c])
        .collect();
    let same = conv::forward(&xd, &wd, Some(&bd), g, case.relu);

    let outs: Vec<Vec<i8>> = isas()
        .into_iter()
        .map(|isa| int8::conv::<i8>(&xq, g, &weights, isa))
        .collect();
    for o in &outs[1..] {
        assert_eq!(o, &outs[0], "{g:?}: AVX2 and scalar differ");
    }
    // Rows padded with zeros to whole 16-lane steps, as the int8 model holds them.
    let kp = int8::padded(k);
    let mut padded = vec![0i16; g.cout * kp];
    for (p, w) in padded.chunks_exact_mut(kp).zip(wide.chunks_exact(k)) {
        p[..k].copy_from_slice(w);
    }
    let long = Weights {
        k: kp,
        values: &padded,
        ..weights.clone()
    };
    for isa in isas() {
        assert_eq!(
            int8::conv::<i8>(&xq, g, &long, isa),
            outs[0],
            "{g:?}: padded rows"
        );
    }
    let y = &outs[0];
    assert_eq!(y.len(), reference.len());
    let scale = max_abs(&reference);
    for (i, &v) in y.iter().enumerate() {
        let got = v as f32 * sy;
        assert!(
            (got - same[i]).abs() <= sy * 1.01,
            "{g:?} relu={}: element {i}: int8 {got}, float on the int8 operands {}",
            case.relu,
            same[i]
        );
        assert!(
            (got - reference[i]).abs() <= 0.04 * scale,
            "{g:?} relu={}: element {i}: int8 {got}, float {} (largest {scale})",
            case.relu,
            reference[i]
        );
        if case.relu {
            assert!(v >= 0);
        }
    }
    // Float output (the last layer's logits): the same sums, unrounded.
    let float_out = Weights {
        multiplier: sw.iter().map(|s| sx * s).collect(),
        ..weights.clone()
    };
    let yf: Vec<Vec<f32>> = isas()
        .into_iter()
        .map(|isa| int8::conv::<f32>(&xq, g, &float_out, isa))
        .collect();
    for o in &yf[1..] {
        assert_eq!(o, &yf[0]);
    }
    for (a, b) in yf[0].iter().zip(&same) {
        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

fn geometry(
    (n, cin, h, w): (usize, usize, usize, usize),
    cout: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    same: bool,
    groups: usize,
) -> Geometry {
    Geometry {
        n,
        cin,
        h,
        w,
        cout,
        kernel,
        stride,
        pad: if same {
            same_pads([h, w], kernel, stride)
        } else {
            [0; 4]
        },
        groups,
    }
}

#[test]
fn int8_convolution_matches_float_on_random_shapes() {
    let cases = [
        // TensorFlow same padding, odd sizes: the extra row and column after.
        (geometry((2, 3, 24, 24), 64, [5, 5], [1, 1], true, 1), true),
        (geometry((1, 5, 7, 9), 7, [3, 3], [2, 2], true, 1), false),
        (geometry((3, 4, 10, 8), 6, [4, 2], [2, 3], true, 1), true),
        (geometry((2, 6, 9, 9), 9, [3, 3], [1, 1], false, 3), false),
        // Groups of 10 filters (the broadcast kernel's panels of 16, part
        // filled), an odd row length of 27 and 49 positions (tiles of 6).
        (geometry((3, 6, 7, 7), 20, [3, 3], [1, 1], true, 2), true),
        // Depthwise: one group per channel, multiplier 2.
        (geometry((2, 8, 11, 13), 16, [3, 3], [2, 2], true, 8), true),
        (geometry((1, 33, 5, 5), 17, [1, 1], [1, 1], false, 1), false),
        // A single image spreads output channels over the threads.
        (geometry((1, 19, 6, 6), 70, [3, 3], [1, 1], true, 1), true),
        // Kernel larger than the map.
        (geometry((2, 3, 3, 3), 5, [5, 5], [1, 1], true, 1), false),
    ];
    for (seed, (g, relu)) in cases.into_iter().enumerate() {
        check_conv(&Case { g, relu }, seed as u64);
    }
}

#[test]
fn int8_dense_matches_float_and_avx2_matches_scalar() {
    for (seed, &(n, k, units, relu)) in [
        (1, 2304, 384, true),
        (5, 37, 10, false),
        (9, 200, 70, true),
        (13, 75, 24, false),
        (1, 15, 3, false),
    ]
    .iter()
    .enumerate()
    {
        let mut rng = SmallRng::seed_from_u64(seed as u64 + 100);
        let x = normal(&mut rng, n * k);
        let w = normal(&mut rng, units * k); // one row per unit
        let bias = normal(&mut rng, units);
        let mut reference = vec![0f32; n * units];
        for i in 0..n {
            for u in 0..units {
                let s: f32 = (0..k).map(|t| x[i * k + t] * w[u * k + t]).sum();
                let y = s + bias[u];
                reference[i * units + u] = if relu { y.max(0.0) } else { y };
            }
        }
        let sx = max_abs(&x) / 127.0;
        let xq = int8::quantize(&x, sx);
        let (wq, sw) = per_row(&w, k);
        let wide: Vec<i16> = wq.iter().map(|&v| v as i16).collect();
        let weights = Weights {
            rows: units,
            k,
            values: &wide,
            bias: (0..units)
                .map(|u| (bias[u] / (sx * sw[u])).round() as i32)
                .collect(),
            multiplier: sw.iter().map(|s| sx * s).collect(),
            relu,
            packed: None,
        };
        let outs: Vec<Vec<f32>> = isas()
            .into_iter()
            .map(|isa| int8::dense::<f32>(&xq, k, &weights, isa))
            .collect();
        for o in &outs[1..] {
            assert_eq!(o, &outs[0], "dense {n}x{k}x{units}: AVX2 and scalar differ");
        }
        let scale = max_abs(&reference);
        for (a, b) in outs[0].iter().zip(&reference) {
            assert!(
                (a - b).abs() <= 0.04 * scale,
                "dense {n}x{k}x{units}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn avx2_products_equal_scalar_at_the_extremes() {
    if Isa::detect() != Isa::Avx2 {
        return;
    }
    // -127 x -127 everywhere: the largest products, and lengths around 16.
    for k in [1, 15, 16, 17, 31, 33, 1600] {
        for (m, n) in [(1, 1), (2, 4), (3, 5), (5, 9)] {
            let mut rng = SmallRng::seed_from_u64(k as u64);
            let a: Vec<i16> = (0..m * k)
                .map(|i| {
                    if i % 3 == 0 {
                        -127
                    } else {
                        rng.random_range(-127..=127)
                    }
                })
                .collect();
            let b: Vec<i16> = (0..n * k)
                .map(|i| {
                    if i % 2 == 0 {
                        -127
                    } else {
                        rng.random_range(-127..=127)
                    }
                })
                .collect();
            let mut s = vec![0; m * n];
            let mut v = vec![0; m * n];
            int8::products(&a, &b, k, Isa::Scalar, &mut s);
            int8::products(&a, &b, k, Isa::Avx2, &mut v);
            assert_eq!(s, v, "k={k} m={m} n={n}");
        }
    }
    // The broadcast kernel (a dense layer of 7 images, 20 units) on the
    // largest products too.
    for k in [15, 16, 1600] {
        let x = vec![-127i8; 7 * k];
        let w: Vec<i16> = (0..20 * k)
            .map(|i| if i % 5 == 0 { 127 } else { -127 })
            .collect();
        let weights = Weights {
            rows: 20,
            k,
            values: &w,
            bias: vec![0; 20],
            multiplier: vec![1.0; 20],
            relu: false,
            packed: None,
        };
        let s = int8::dense::<f32>(&x, k, &weights, Isa::Scalar);
        let v = int8::dense::<f32>(&x, k, &weights, Isa::Avx2);
        assert_eq!(s, v, "dense k={k}");
        // Unit 0: 127 at every fifth input, -127 elsewhere, times -127.
        let fifths = k.div_ceil(5) as f32;
        assert_eq!(s[0], -127.0 * 127.0 * (2.0 * fifths - k as f32));
    }
}

#[test]
fn int8_max_pooling_equals_float_pooling_of_the_same_values() {
    let mut rng = SmallRng::seed_from_u64(7);
    for &(h, w, kernel, stride, same) in &[
        (24, 24, [3, 3], [2, 2], true),
        (7, 5, [3, 3], [2, 2], true),
        (9, 11, [2, 3], [1, 2], true),
        (8, 8, [2, 2], [2, 2], false),
    ] {
        let planes = 3;
        let x: Vec<i8> = (0..planes * h * w)
            .map(|_| rng.random_range(-127..=127))
            .collect();
        let pad = if same {
            same_pads([h, w], kernel, stride)
        } else {
            [0; 4]
        };
        let win = Window {
            kernel,
            stride,
            pad,
        };
        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let want: Vec<f32> = cpu::max_pool(&xf, h, w, win);
        let got: Vec<f32> = int8::max_pool(&x, h, w, win)
            .iter()
            .map(|&v| v as f32)
            .collect();
        assert_eq!(got, want, "{h}x{w} {kernel:?} /{stride:?}");
    }
}

#[test]
fn int8_lrn_matches_float_lrn_of_the_same_values() {
    let mut rng = SmallRng::seed_from_u64(11);
    // tuto's LRN, windows as wide as the channels and wider (down to one
    // channel), and a beta off the fast path.
    for &(n, c, hw, radius, beta) in &[
        (3, 64, 12 * 12, 4, 0.75),
        (2, 5, 7, 4, 0.75),
        (2, 3, 7, 4, 0.75),
        (2, 1, 30, 2, 0.75),
        (2, 9, 10, 2, 0.5),
    ] {
        let p = cpu::Lrn {
            radius,
            bias: 1.0,
            alpha: 0.001 / 9.0,
            beta,
        };
        // Non-negative like an LRN after a ReLU, large enough for the
        // normalization to matter.
        let x: Vec<f32> = (0..n * c * hw)
            .map(|_| rng.random::<f32>() * 30.0)
            .collect();
        let sx = max_abs(&x) / 127.0;
        let xq = int8::quantize(&x, sx);
        let xd = int8::dequantize(&xq, sx);
        let (same, _) = cpu::lrn(&xd, c, hw, p);
        let sy = max_abs(&same) / 127.0;
        let y = int8::lrn(&xq, sx, sy, c, hw, p);
        assert_eq!(y.len(), same.len());
        let mut changed = 0;
        for (i, (&q, &f)) in y.iter().zip(&same).enumerate() {
            let got = q as f32 * sy;
            assert!(
                (got - f).abs() <= sy * 0.51,
                "c={c} radius={radius} beta={beta}: element {i}: int8 {got}, float {f}"
            );
            changed += ((xd[i] - f).abs() > sy) as usize;
        }
        // The normalization moved values by more than a step: the check
        // above compares something.
        assert!(changed > y.len() / 10, "{changed} of {}", y.len());
    }
}
