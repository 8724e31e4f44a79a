//! netc's CPU kernels layer by layer, on the shapes of the seed's models at
//! batch 128 (or the batch given): the median of 15 timed calls of each,
//! as CSV. `bench/layers/torch_layers.py` times the same layers in
//! PyTorch. With `--gemm` the convolutions' products go to `gemm` even on
//! a CPU with AVX-512 (`panel::prefer_gemm`); with `--avx2` the products
//! and poolings run as on a CPU with AVX2 only (`panel::limit_to_avx2`);
//! with `--panel` small maps' convolutions run on `panel.rs`'s products
//! rather than with the images in the vector lanes (`conv::prefer_panel`).
//! `--weight` times the convolutions' weight and bias gradients instead
//! (a first layer's backward), `--backward` every gradient (with either,
//! the poolings' gradients).
//!
//!     cargo run --release -p netc-runtime --example layers -- [--gemm] [--avx2] [--panel] [--weight|--backward] [batch] [name...]
//!
//! A name times only the layers whose names contain it.
use netc_runtime::kernels::conv::{backward, forward, Geometry};
use netc_runtime::kernels::cpu::{max_pool, max_pool_backward, Window};
use std::time::Instant;

fn median_ms(mut f: impl FnMut()) -> f64 {
    f();
    let mut v: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What a convolution's timing covers.
#[derive(Clone, Copy)]
enum Pass {
    Forward,
    /// The weight and bias gradients only (a first layer's backward).
    Weight,
    /// Every gradient, through the fused ReLU.
    Backward,
}

/// A `same` convolution, stride 1, with bias and fused ReLU: its forward
/// pass or its gradients, as `pass` says.
fn conv(n: usize, pass: Pass, cin: usize, h: usize, cout: usize, k: usize) -> f64 {
    let p = (k - 1) / 2;
    let g = Geometry {
        n,
        cin,
        h,
        w: h,
        cout,
        kernel: [k, k],
        stride: [1, 1],
        pad: [p, k - 1 - p, p, k - 1 - p],
        groups: 1,
    };
    let x = vec![0.5f32; n * cin * h * h];
    let w = vec![0.01f32; cout * cin * k * k];
    let b = vec![0.1f32; cout];
    let y = forward(&x, &w, Some(&b), &g, true);
    let dy: Vec<f32> = (0..y.len()).map(|i| (i % 7) as f32 * 0.01 - 0.03).collect();
    median_ms(|| match pass {
        Pass::Forward => {
            std::hint::black_box(forward(&x, &w, Some(&b), &g, true));
        }
        Pass::Weight => {
            std::hint::black_box(backward(&x, &w, &dy, Some(&y), &g, false));
        }
        Pass::Backward => {
            std::hint::black_box(backward(&x, &w, &dy, Some(&y), &g, true));
        }
    })
}

/// A 3x3 max pooling, stride 2, TensorFlow's `same` padding: forward, or
/// its gradient (`--weight`, `--backward`).
fn pool(n: usize, pass: Pass, c: usize, h: usize) -> f64 {
    let win = Window {
        kernel: [3, 3],
        stride: [2, 2],
        pad: [0, 1, 0, 1],
    };
    // Values without ties, so the gradient's search runs as on real maps.
    let x: Vec<f32> = (0..n * c * h * h)
        .map(|i| ((i * 7919) % 1009) as f32)
        .collect();
    let y = max_pool(&x, h, h, win);
    median_ms(|| match pass {
        Pass::Forward => {
            std::hint::black_box(max_pool(&x, h, h, win));
        }
        Pass::Weight | Pass::Backward => {
            std::hint::black_box(max_pool_backward(&x, &y, &y, h, h, win));
        }
    })
}

fn main() {
    netc_runtime::memory::keep_freed_memory();
    // As in the generated programs (`cli::run`): this thread is one of the pool's.
    let _ = rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    netc_runtime::kernels::panel::prefer_gemm(flag("--gemm"));
    netc_runtime::kernels::panel::limit_to_avx2(flag("--avx2"));
    netc_runtime::kernels::conv::prefer_panel(flag("--panel"));
    let pass = if flag("--backward") {
        Pass::Backward
    } else if flag("--weight") {
        Pass::Weight
    } else {
        Pass::Forward
    };
    let plain = || args.iter().filter(|a| !a.starts_with("--"));
    let n: usize = plain().find_map(|a| a.parse().ok()).unwrap_or(128);
    // Any other plain argument picks the layers whose names contain it.
    let only: Vec<&String> = plain().filter(|a| a.parse::<usize>().is_err()).collect();
    println!("layer,ms");
    let layers: [(&str, &dyn Fn() -> f64); 24] = [
        ("tuto.conv1", &|| conv(n, pass, 3, 24, 64, 5)),
        ("tuto.conv2", &|| conv(n, pass, 64, 12, 64, 5)),
        ("alex4.conv1", &|| conv(n, pass, 3, 24, 96, 5)),
        ("alex4.pool1", &|| pool(n, pass, 96, 24)),
        ("alex4.conv2", &|| conv(n, pass, 96, 12, 96, 3)),
        ("alex4.pool2", &|| pool(n, pass, 96, 12)),
        ("squeeze1.conv1", &|| conv(n, pass, 3, 24, 64, 3)),
        ("squeeze1.pool1", &|| pool(n, pass, 64, 24)),
        ("squeeze1.fire1.squeeze", &|| conv(n, pass, 64, 12, 32, 1)),
        ("squeeze1.fire1.e1x1", &|| conv(n, pass, 32, 12, 64, 1)),
        ("squeeze1.fire1.e3x3", &|| conv(n, pass, 32, 12, 64, 3)),
        ("squeeze1.fire2.squeeze", &|| conv(n, pass, 128, 12, 32, 1)),
        ("squeeze1.pool2", &|| pool(n, pass, 128, 12)),
        ("squeeze1.fire3.squeeze", &|| conv(n, pass, 128, 6, 32, 1)),
        ("squeeze1.fire3.e3x3", &|| conv(n, pass, 32, 6, 128, 3)),
        ("squeeze1.fire3.e1x1", &|| conv(n, pass, 32, 6, 128, 1)),
        ("squeeze1.fire4.squeeze", &|| conv(n, pass, 256, 6, 32, 1)),
        ("squeeze1.conv2", &|| conv(n, pass, 256, 6, 10, 1)),
        ("nin2.nin1.conv", &|| conv(n, pass, 3, 24, 192, 5)),
        ("nin2.nin1.mlp1", &|| conv(n, pass, 192, 24, 160, 1)),
        ("nin2.nin1.mlp2", &|| conv(n, pass, 160, 24, 96, 1)),
        ("nin2.nin2.conv", &|| conv(n, pass, 96, 12, 192, 5)),
        ("nin2.nin2.mlp1", &|| conv(n, pass, 192, 12, 192, 1)),
        ("nin2.nin3.conv", &|| conv(n, pass, 192, 6, 192, 3)),
    ];
    for (name, run) in layers {
        if !only.is_empty() && !only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        println!("{name},{:.3}", run());
    }
}
