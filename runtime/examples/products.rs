//! The matrix products of the zoo's convolutions on one core: `gemm` 0.19
//! (weights packed by gemm on every call, as `conv.rs` calls it) against
//! `panel.rs` (weights packed once) with AVX-512 and with AVX2 (NaN where
//! the CPU lacks it), in GFLOP/s, the best of 5 runs of
//! about 2 GFLOP each. `bench/layers/fma_peak.c` measures the core's peak.
//!
//!     cargo run --release -p netc-runtime --example products
use gemm::{gemm, Parallelism};
use netc_runtime::kernels::panel::{self, Cols, Isa, Weights};
use std::time::Instant;

fn gflops(m: usize, n: usize, k: usize, mut product: impl FnMut()) -> f64 {
    let reps = (2e9 / (2.0 * (m * n * k) as f64)) as usize + 1;
    let best = (0..5)
        .map(|_| {
            let t = Instant::now();
            (0..reps).for_each(|_| product());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    2.0 * (m * n * k * reps) as f64 / best / 1e9
}

fn main() {
    netc_runtime::memory::keep_freed_memory();
    println!("m,n,k,gemm_gflops,panel_avx512_gflops,panel_avx2_gflops");
    // (channels out, output positions, channels in x kernel): alex4's conv1
    // and conv2, squeeze1's fire1.e3x3, nin2's nin2.conv.
    for (m, n, k) in [
        (96, 576, 75),
        (96, 144, 864),
        (64, 144, 288),
        (192, 144, 2400),
    ] {
        let a = vec![0.01f32; m * k];
        let b = vec![0.02f32; k * n];
        let mut c = vec![0.0f32; m * n];
        let with_gemm = gflops(m, n, k, || unsafe {
            // SAFETY: a is m x k, b is k x n and c is m x n, all row-major.
            gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            )
        });
        let mut on = |isa: Isa| match panel::has(isa) {
            true => {
                let w = Weights::pack_for(isa, &a, m, k, 1).expect("weights");
                gflops(m, n, k, || {
                    let cols = Cols::Matrix { data: &b, ld: n };
                    panel::product(&w, cols, n, None, false, &mut c, false);
                })
            }
            false => f64::NAN,
        };
        let (wide, avx2) = (on(Isa::Avx512), on(Isa::Avx2));
        println!("{m},{n},{k},{with_gemm:.1},{wide:.1},{avx2:.1}");
    }
}
