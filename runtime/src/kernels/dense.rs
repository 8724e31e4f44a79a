//! Fully connected layers for a few rows at a time (batch-1 inference): y =
//! x W + b, then the ReLU. Each weight is read once per call, so the
//! product is bound by memory, not arithmetic: `gemm` ran these products on
//! one thread, a quarter of alex4's batch-1 time (fc1's weights are 5.3 MB).
//! Here the weights' rows are cut into fixed chunks, each chunk's sums are
//! made on whichever thread takes it, and the chunks' sums are added in
//! order: the same bits on any number of threads. No fused multiply-add
//! either, so the same bits on any CPU; wide vectors where it has them.

#[cfg(target_arch = "x86_64")]
use super::panel::Isa;
use rayon::prelude::*;

/// The most rows this kernel takes; more go to `gemm`, whose blocked
/// product reuses each weight across rows.
pub const FEW: usize = 4;
/// Weight rows per chunk: 128 x 384 values (alex4's fc1) is 192 KiB.
const CHUNK: usize = 128;
/// Weights below which the calling thread sums every chunk itself: waking
/// another thread costs more than reading 256 KiB.
const SERIAL: usize = 1 << 16;
/// Weight rows per pass over the sums: alex4's fc1 (3456 x 384) took 465
/// us on one thread of the Xeon one row at a time, 294-307 four at a time
/// (120 us on two threads; NumPy's `x @ W`, 138); 8 and 16 were no faster.
const AT_ONCE: usize = 4;

/// `x` (rows x k) times `w` (k x units, row-major), plus `bias`, then the
/// ReLU if `relu` (`max(0)`: a NaN becomes 0, as in the convolutions).
pub fn forward(
    x: &[f32],
    rows: usize,
    w: &[f32],
    units: usize,
    bias: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    let k = x.len().checked_div(rows).unwrap_or(0);
    assert!(x.len() == rows * k && w.len() == k * units);
    assert!(bias.is_none_or(|b| b.len() == units));
    let chunks = k.div_ceil(CHUNK).max(1);
    let mut partial = vec![0.0f32; chunks * rows * units];
    let sum = |(c, p): (usize, &mut [f32])| {
        let first = c * CHUNK;
        let last = (first + CHUNK).min(k);
        accumulate(x, k, first, &w[first * units..last * units], units, p);
    };
    let each = (rows * units).max(1);
    if k * units < SERIAL {
        partial.chunks_mut(each).enumerate().for_each(sum);
    } else {
        partial.par_chunks_mut(each).enumerate().for_each(sum);
    }
    let mut y = partial[..rows * units].to_vec();
    for p in partial.chunks(each).skip(1) {
        y.iter_mut().zip(p).for_each(|(y, p)| *y += p);
    }
    for row in y.chunks_mut(units.max(1)) {
        if let Some(b) = bias {
            row.iter_mut().zip(b).for_each(|(y, b)| *y += b);
        }
        if relu {
            row.iter_mut().for_each(|y| *y = y.max(0.0));
        }
    }
    y
}

/// Adds, for every row r of `x` and every weight row `first + i` in `w`,
/// x[r][first + i] times that weight row to `p`'s row r.
fn accumulate(x: &[f32], k: usize, first: usize, w: &[f32], units: usize, p: &mut [f32]) {
    // `panel::vectors`: AVX2 also on a CPU with AVX-512 where the process
    // runs as an AVX2 CPU would (`panel::limit_to_avx2`).
    #[cfg(target_arch = "x86_64")]
    match super::panel::vectors() {
        // SAFETY: this CPU has AVX-512, the only thing `wide` assumes.
        Some(Isa::Avx512) => return unsafe { wide(x, k, first, w, units, p) },
        // SAFETY: this CPU has AVX2, the only thing `avx2` assumes.
        Some(Isa::Avx2) => return unsafe { avx2(x, k, first, w, units, p) },
        None => {}
    }
    rows(x, k, first, w, units, p)
}

/// `rows`, compiled for 16-lane vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn wide(x: &[f32], k: usize, first: usize, w: &[f32], units: usize, p: &mut [f32]) {
    rows(x, k, first, w, units, p)
}

/// `rows`, compiled for 8-lane vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2(x: &[f32], k: usize, first: usize, w: &[f32], units: usize, p: &mut [f32]) {
    rows(x, k, first, w, units, p)
}

/// A multiply, then an add: each rounds as on any CPU (Rust never fuses
/// them), so the vector widths give the same bits.
#[inline(always)]
fn rows(x: &[f32], k: usize, first: usize, w: &[f32], units: usize, p: &mut [f32]) {
    if units == 0 {
        return;
    }
    // `AT_ONCE` weight rows per pass over `p`, added in order: the bits
    // of one row at a time, with a quarter of the loads and stores of `p`.
    let mut blocks = w.chunks_exact(AT_ONCE * units);
    for (q, block) in blocks.by_ref().enumerate() {
        let ws: [&[f32]; AT_ONCE] = std::array::from_fn(|t| &block[t * units..(t + 1) * units]);
        for (r, p) in p.chunks_exact_mut(units).enumerate() {
            let at = r * k + first + AT_ONCE * q;
            let a: [f32; AT_ONCE] = x[at..at + AT_ONCE].try_into().expect("a block of inputs");
            for j in 0..units {
                let mut v = p[j];
                for t in 0..AT_ONCE {
                    v += a[t] * ws[t][j];
                }
                p[j] = v;
            }
        }
    }
    let done = w.len() / units / AT_ONCE * AT_ONCE;
    for (i, weights) in blocks.remainder().chunks_exact(units).enumerate() {
        for (r, p) in p.chunks_exact_mut(units).enumerate() {
            let a = x[r * k + first + done + i];
            p.iter_mut().zip(weights).for_each(|(p, w)| *p += a * w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::noise;
    use super::*;

    /// The definition in f64.
    fn reference(x: &[f32], rows: usize, w: &[f32], units: usize, b: &[f32]) -> Vec<f64> {
        let k = x.len() / rows;
        let mut y = vec![0.0f64; rows * units];
        for r in 0..rows {
            for u in 0..units {
                let dot: f64 = (0..k)
                    .map(|i| x[r * k + i] as f64 * w[i * units + u] as f64)
                    .sum();
                y[r * units + u] = dot + b[u] as f64;
            }
        }
        y
    }

    #[test]
    fn the_product_equals_the_definition() {
        // Chunks of 128 rows: none, one partial, one whole, several; the
        // large case takes the parallel path.
        for (rows, k, units) in [
            (1, 0, 5),
            (1, 1, 1),
            (2, 127, 17),
            (3, 128, 33),
            (4, 129, 10),
            (1, 3456, 384),
            (4, 1000, 70),
        ] {
            let x = noise(rows * k, 1 + k as u64);
            let w = noise(k * units, 2 + units as u64);
            let b = noise(units, 3);
            let want = reference(&x, rows, &w, units, &b);
            let y = forward(&x, rows, &w, units, Some(&b), false);
            assert_eq!(y.len(), rows * units);
            for (i, (&y, &r)) in y.iter().zip(&want).enumerate() {
                let tol = 1e-5 * (1.0 + (k as f64).sqrt());
                assert!(
                    (y as f64 - r).abs() <= tol,
                    "{rows}x{k}x{units} at {i}: {y} vs {r}"
                );
            }
            let relu = forward(&x, rows, &w, units, Some(&b), true);
            for (&a, &y) in relu.iter().zip(&y) {
                assert_eq!(a, y.max(0.0));
            }
            let plain = forward(&x, rows, &w, units, None, false);
            for (i, (&p, &y)) in plain.iter().zip(&y).enumerate() {
                assert!((p + b[i % units] - y).abs() <= 1e-5, "bias at {i}");
            }
        }
    }

    #[test]
    fn the_bits_are_the_same_on_any_number_of_threads_and_any_width() {
        let (rows, k, units) = (2, 1500, 200);
        let x = noise(rows * k, 7);
        let w = noise(k * units, 8);
        let b = noise(units, 9);
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| forward(&x, rows, &w, units, Some(&b), true))
        };
        let one = on(1);
        assert_eq!(one, on(2));
        assert_eq!(one, on(5));
        // The portable loop, chunk by chunk, as `forward` cuts them.
        let mut want = vec![0.0f32; rows * units];
        for c in 0..k.div_ceil(CHUNK) {
            let mut p = vec![0.0f32; rows * units];
            let (first, last) = (c * CHUNK, ((c + 1) * CHUNK).min(k));
            rows_portable(&x, k, first, &w[first * units..last * units], units, &mut p);
            if c == 0 {
                want = p;
            } else {
                want.iter_mut().zip(&p).for_each(|(y, p)| *y += p);
            }
        }
        for row in want.chunks_mut(units) {
            row.iter_mut()
                .zip(&b)
                .for_each(|(y, b)| *y = (*y + b).max(0.0));
        }
        assert_eq!(one, want);
        // Each width's loop on one chunk, against the portable one.
        let (first, w1) = (CHUNK, &w[CHUNK * units..2 * CHUNK * units]);
        let mut want = vec![0.0f32; rows * units];
        rows_portable(&x, k, first, w1, units, &mut want);
        let mut p = vec![0.0f32; rows * units];
        super::rows(&x, k, first, w1, units, &mut p);
        assert_eq!(p, want, "portable");
        #[cfg(target_arch = "x86_64")]
        for (isa, has) in [
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
        ] {
            if !has {
                continue;
            }
            let mut p = vec![0.0f32; rows * units];
            // SAFETY: this CPU has the loop's instructions (checked above).
            unsafe {
                match isa {
                    "avx512f" => wide(&x, k, first, w1, units, &mut p),
                    _ => avx2(&x, k, first, w1, units, &mut p),
                }
            }
            assert_eq!(p, want, "{isa}");
        }
    }

    /// `rows` without any vector feature enabled around it.
    #[inline(never)]
    fn rows_portable(x: &[f32], k: usize, first: usize, w: &[f32], units: usize, p: &mut [f32]) {
        for (i, weights) in w.chunks_exact(units).enumerate() {
            for (r, p) in p.chunks_exact_mut(units).enumerate() {
                let a = x[r * k + first + i];
                for (p, w) in p.iter_mut().zip(weights) {
                    *p = std::hint::black_box(*p + std::hint::black_box(a * w));
                }
            }
        }
    }

    #[test]
    fn a_nan_through_the_relu_becomes_zero_and_without_it_stays() {
        let x = [f32::NAN, 1.0];
        let w = [1.0, 2.0];
        assert_eq!(forward(&x, 1, &w, 1, None, true), [0.0]);
        assert!(forward(&x, 1, &w, 1, None, false)[0].is_nan());
    }
}
