//! netc's CPU kernels against burn's reference ops (`kernels::composed`):
//! the same outputs and the same input gradients on random tensors of odd
//! sizes, strides and TensorFlow `same` paddings.

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Distribution, TensorPrimitive};
use netc_runtime::kernels::{composed, ConvSpec, Kernels, Lrn, Window};
use netc_runtime::nn::same_pads;

type B = Autodiff<Flex>;

fn close(a: Tensor<Flex, 4>, b: Tensor<Flex, 4>, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let a: Vec<f32> = a.into_data().to_vec().unwrap();
    let b: Vec<f32> = b.into_data().to_vec().unwrap();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
            "{what}: element {i}: kernel {x}, reference {y}"
        );
    }
}

/// Output and input gradient of `f` on `x`, the gradient taken of
/// sum(output * weights) so that every output cell counts differently.
fn run(
    x: &Tensor<Flex, 4>,
    f: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>,
    weights: &Tensor<Flex, 4>,
) -> (Tensor<Flex, 4>, Tensor<Flex, 4>) {
    let x = Tensor::<B, 4>::from_inner(x.clone()).require_grad();
    let y = f(x.clone());
    let loss = (y.clone() * Tensor::from_inner(weights.clone())).sum();
    let grads = loss.backward();
    (y.inner(), x.grad(&grads).expect("a gradient"))
}

fn kernel<F>(x: Tensor<B, 4>, f: F) -> Tensor<B, 4>
where
    F: Fn(FloatTensor<B>) -> FloatTensor<B>,
{
    Tensor::from_primitive(TensorPrimitive::Float(f(x.into_primitive().tensor())))
}

fn random(shape: [usize; 4], seed: u64) -> Tensor<Flex, 4> {
    let device = Default::default();
    Flex::seed(&device, seed);
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device)
}

/// `len` random values, as a plain vector.
fn values(len: usize, seed: u64) -> Vec<f32> {
    random([len, 1, 1, 1], seed).into_data().to_vec().unwrap()
}

/// The values' bits, to compare results exactly.
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// Runs `f` on a pool of two threads: how the kernels split their work
/// (tiles, chunks of planes) depends on the thread count, and the cases
/// below are sized for two.
fn on_two_threads(f: impl FnOnce() + Send) {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(f)
}

/// The process-wide switches (`panel::limit_to_avx2`, `panel::prefer_gemm`,
/// `conv::prefer_panel`, `cpu::poison_new_outputs`) reach the products, the poolings and the
/// dense loop: each test that runs any of those holds this, so that it runs
/// the paths it names whatever the others do. Released, it turns every
/// switch off, even after a panic.
struct Switches {
    _turn: std::sync::MutexGuard<'static, ()>,
}

fn switches() -> Switches {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    Switches {
        _turn: LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
    }
}

impl Drop for Switches {
    fn drop(&mut self) {
        use netc_runtime::kernels::panel;
        panel::limit_to_avx2(false);
        panel::prefer_gemm(false);
        netc_runtime::kernels::conv::prefer_panel(false);
        netc_runtime::kernels::cpu::poison_new_outputs(false);
    }
}

/// With each CPU's rows, and with AVX2's on a CPU with AVX-512 too.
#[test]
fn max_pooling_matches_burn_on_odd_shapes_strides_and_paddings() {
    let _switches = switches();
    on_two_threads(max_pooling_cases);
    netc_runtime::kernels::panel::limit_to_avx2(true);
    on_two_threads(max_pooling_cases);
}

fn max_pooling_cases() {
    let cases = [
        // (n, c, h, w), kernel, stride, same
        ([2, 3, 24, 24], [3, 3], [2, 2], true),
        ([1, 2, 7, 5], [3, 3], [2, 2], true),
        ([3, 1, 9, 11], [2, 3], [1, 2], true),
        ([2, 4, 8, 8], [2, 2], [2, 2], false),
        ([1, 3, 13, 6], [3, 2], [3, 1], false),
        ([2, 2, 5, 5], [5, 5], [1, 1], true),
        ([1, 1, 1, 1], [3, 3], [2, 2], true),
        // Enough planes of 32 x 32 outputs for several chunks of whole
        // planes on each of two threads, the last one shorter.
        ([3, 41, 64, 64], [3, 3], [2, 2], true),
    ];
    for (i, (shape, kernel, stride, same)) in cases.into_iter().enumerate() {
        let pad = if same {
            same_pads([shape[2], shape[3]], kernel, stride)
        } else {
            [0; 4]
        };
        let win = Window {
            kernel,
            stride,
            pad,
        };
        let x = random(shape, i as u64);
        let (oh, ow) = win.out(shape[2], shape[3]);
        let weights = random([shape[0], shape[1], oh, ow], 100 + i as u64);
        let what = format!("case {i}: {shape:?} kernel {kernel:?} stride {stride:?} same {same}");
        let (y, dx) = run(&x, |x| kernel_pool(x, win), &weights);
        let (y_ref, dx_ref) = run(&x, |x| composed::max_pool(x, win), &weights);
        close(y, y_ref, &format!("{what}, output"));
        close(dx, dx_ref, &format!("{what}, gradient"));
        // Inference runs the forward kernel of the inner backend.
        let inner = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(Flex::max_pool(
            x.clone().into_primitive().tensor(),
            win,
        )));
        close(
            inner,
            composed::max_pool(x, win),
            &format!("{what}, inference"),
        );
    }
}

fn kernel_pool(x: Tensor<B, 4>, win: Window) -> Tensor<B, 4> {
    kernel(x, |p| B::max_pool(p, win))
}

#[test]
fn lrn_matches_burn_for_several_radii_and_channel_counts() {
    let cases = [
        ([2, 64, 12, 12], 4, 1.0, 0.001 / 9.0, 0.75),
        ([3, 5, 3, 7], 2, 2.0, 0.1, 0.75),
        ([1, 3, 4, 4], 4, 1.0, 0.5, 0.5),
        ([2, 1, 5, 2], 1, 0.5, 1.0, 1.0),
    ];
    for (i, (shape, radius, bias, alpha, beta)) in cases.into_iter().enumerate() {
        let p = Lrn {
            radius,
            bias,
            alpha,
            beta,
        };
        let x = random(shape, 7 + i as u64);
        let weights = random(shape, 70 + i as u64);
        let what = format!("case {i}: {shape:?} {p:?}");
        let (y, dx) = run(&x, |x| kernel(x, |t| B::lrn(t, p)), &weights);
        let (y_ref, dx_ref) = run(&x, |x| composed::lrn(x, p), &weights);
        close(y, y_ref, &format!("{what}, output"));
        close(dx, dx_ref, &format!("{what}, gradient"));
        let inner = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(Flex::lrn(
            x.clone().into_primitive().tensor(),
            p,
        )));
        close(inner, composed::lrn(x, p), &format!("{what}, inference"));
    }
}

/// Output and the gradients of input, weights and bias of a convolution.
fn conv_run(
    x: &Tensor<Flex, 4>,
    w: &Tensor<Flex, 4>,
    b: Option<&Tensor<Flex, 1>>,
    spec: ConvSpec,
    ours: bool,
    weights: &Tensor<Flex, 4>,
) -> Vec<Vec<f32>> {
    with_grads((x, w, b), weights, |x, w, b| match ours {
        true => kernel_conv(x, w, b, spec),
        false => composed::conv(x, w, b, spec),
    })
}

/// netc's convolution on the autodiff backend.
fn kernel_conv(
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    b: Option<Tensor<B, 1>>,
    spec: ConvSpec,
) -> Tensor<B, 4> {
    let p = |t: Tensor<B, 4>| t.into_primitive().tensor();
    let bias = b.map(|b| b.into_primitive().tensor());
    Tensor::from_primitive(TensorPrimitive::Float(B::conv(p(x), p(w), bias, spec)))
}

/// Output and the gradients of input, weights and bias of `f(x, w, b)`, the
/// gradient taken of sum(output * weights).
fn with_grads(
    (x, w, b): (&Tensor<Flex, 4>, &Tensor<Flex, 4>, Option<&Tensor<Flex, 1>>),
    weights: &Tensor<Flex, 4>,
    f: impl Fn(Tensor<B, 4>, Tensor<B, 4>, Option<Tensor<B, 1>>) -> Tensor<B, 4>,
) -> Vec<Vec<f32>> {
    let x = Tensor::<B, 4>::from_inner(x.clone()).require_grad();
    let w = Tensor::<B, 4>::from_inner(w.clone()).require_grad();
    let b = b.map(|b| Tensor::<B, 1>::from_inner(b.clone()).require_grad());
    let y = f(x.clone(), w.clone(), b.clone());
    let grads = (y.clone() * Tensor::from_inner(weights.clone()))
        .sum()
        .backward();
    let flat = |t: Tensor<Flex, 4>| t.into_data().to_vec::<f32>().unwrap();
    let mut out = vec![
        flat(y.inner()),
        flat(x.grad(&grads).unwrap()),
        flat(w.grad(&grads).unwrap()),
    ];
    if let Some(b) = b {
        out.push(b.grad(&grads).unwrap().into_data().to_vec().unwrap());
    }
    out
}

/// Every path of the products: `panel.rs` with AVX-512 where the CPU has
/// it, with AVX2 where it has that (CPUs without AVX-512 run this one), and
/// `gemm`, which the rest run.
#[test]
fn convolution_matches_burn_on_odd_shapes_strides_groups_and_paddings() {
    let _switches = switches();
    on_every_product_path(convolution_cases);
    on_two_threads(avx2_gives_the_avx512_bits);
}

/// `cases` on two threads with each CPU's products, with `panel.rs`'s
/// where the CPU would run small maps with the images in the vector lanes
/// (`lanes.rs`), with AVX2's, and with `gemm`'s, each new output full of
/// NaNs before its kernel writes it (a value left unwritten would show).
/// The caller holds `switches()`.
fn on_every_product_path(cases: fn()) {
    use netc_runtime::kernels::{conv, panel};
    netc_runtime::kernels::cpu::poison_new_outputs(true);
    on_two_threads(cases);
    conv::prefer_panel(true);
    on_two_threads(cases);
    conv::prefer_panel(false);
    panel::limit_to_avx2(true);
    on_two_threads(cases);
    panel::limit_to_avx2(false);
    panel::prefer_gemm(true);
    on_two_threads(cases);
    panel::prefer_gemm(false);
}

/// The AVX2 products give AVX-512's bits on every source of columns:
/// shifted planes (stride 1, as wide as the input), gathers (stride 2; 6 x
/// 6 maps, a tile of images per product), the image itself (1x1); at batch
/// 1 and at a batch. And they read and write nothing outside their
/// buffers: AVX2's masked loads and stores touch lanes past a row's end
/// and in a shift's padding, masked out, and AMD's manual calls a fault on
/// such a lane "implementation dependent", so `panel.rs` takes a vector
/// that leaves its buffer lane by lane. Here each input (and, for a
/// product alone, its column matrix and output) also lies against a page
/// that faults, at its end and at its start: no fault, and the same bits.
/// On Intel's cores the old masked accesses passed this too; on an AMD
/// core that faults, only the lane-by-lane edges do. Where the CPU lacks
/// AVX-512, AVX2's bits on ordinary memory are the reference.
fn avx2_gives_the_avx512_bits() {
    use netc_runtime::kernels::conv::{forward, Geometry};
    use netc_runtime::kernels::panel::{self, Cols, Isa, Weights};
    if !panel::has(Isa::Avx2) {
        eprintln!("this CPU lacks AVX2: no AVX2 products to check");
        return;
    }
    let reference = if panel::has(Isa::Avx512) {
        Isa::Avx512
    } else {
        Isa::Avx2
    };
    for (n, cin, h, cout, k, stride) in [
        (3, 5, 12, 20, 5, 1),
        (1, 5, 12, 20, 5, 1),
        (1, 5, 7, 9, 3, 1),
        (4, 6, 13, 9, 3, 2),
        (5, 8, 6, 16, 3, 1),
        (2, 7, 10, 12, 1, 1),
        // Tiles ordered to leave out the padding's taps.
        (16, 5, 6, 12, 3, 1),
        (8, 6, 12, 10, 5, 1),
        // With AVX-512, small maps with images in the vector lanes
        // (`lanes.rs`): a batch of two vectors and a part, 5 x 5 on 12 x
        // 12 and 3 x 3 on 6 x 6.
        (33, 6, 12, 10, 5, 1),
        (40, 7, 6, 9, 3, 1),
    ] {
        let p = (k - 1) / 2;
        let g = Geometry {
            n,
            cin,
            h,
            w: h,
            cout,
            kernel: [k, k],
            stride: [stride, stride],
            pad: [p, k - 1 - p, p, k - 1 - p],
            groups: 1,
        };
        let (x, w, b) = (
            values(n * cin * h * h, 1),
            values(cout * cin * k * k, 2),
            values(cout, 3),
        );
        let run = |isa: Isa, x: &[f32]| {
            panel::limit_to_avx2(isa == Isa::Avx2);
            let y = forward(x, &w, Some(&b), &g, true);
            panel::limit_to_avx2(false);
            bits(&y)
        };
        let want = run(reference, &x);
        assert_eq!(run(Isa::Avx2, &x), want, "{g:?}");
        for (at_end, isa) in [true, false]
            .into_iter()
            .flat_map(|e| [(e, Isa::Avx2), (e, reference)])
        {
            let mut x = Guarded::new(&x, at_end);
            let y = run(isa, x.get());
            assert_eq!(
                y, want,
                "{g:?}, {isa:?}, input at the end of its pages: {at_end}"
            );
        }
    }
    // A product alone, on a column matrix and an output whose rows end
    // short of a vector (13 columns), deeper than one pass (5300 > 2560), so
    // the tiles also read their earlier sums back from the output; 13 rows,
    // two panels of 8 for the threads.
    let (m, n, k) = (13, 13, 5300);
    let (w, cols) = (values(m * k, 7), values(k * n, 8));
    let mut want = vec![0.0; m * n];
    let matrix = Cols::Matrix { data: &cols, ld: n };
    let weights = Weights::pack_for(reference, &w, m, k, 1).expect("vectors");
    panel::product(&weights, matrix, n, None, true, &mut want, false);
    let weights = Weights::pack_for(Isa::Avx2, &w, m, k, 1).expect("AVX2");
    // On one thread, and spread over the threads by panels of 8 rows.
    for (at_end, parallel) in [(true, false), (false, false), (true, true), (false, true)] {
        let nan = vec![f32::NAN; m * n];
        let (mut data, mut y) = (Guarded::new(&cols, at_end), Guarded::new(&nan, at_end));
        let matrix = Cols::Matrix {
            data: data.get(),
            ld: n,
        };
        panel::product(&weights, matrix, n, None, true, y.get(), parallel);
        let what = format!("at the end of its pages: {at_end}, parallel: {parallel}");
        assert_eq!(bits(y.get()), bits(&want), "{what}");
    }
}

/// AVX2's max pooling, forward and backward, reads nothing outside its
/// planes (its vectors at a plane's edges go lane by lane, for the reason
/// `avx2_gives_the_avx512_bits` gives): each input (the planes, and for the
/// gradient the outputs and their gradient too) lies against a page that
/// faults, at its end and at its start, and the pooling and its gradient
/// keep the bits they have on ordinary memory. The planes are narrower
/// than a vector, 8 to 32 wide (rows kept in registers: the last vector of
/// a row is its last 8 columns, then moved into place for `pairs`), and
/// padded on the left (13 wide: a column of `same` padding each side).
/// AVX-512's too where the CPU has it: its masked-out lanes may lie
/// outside a buffer (a pair of narrow planes loads the second plane's
/// outputs from 8 values before them), which AVX-512 defines not to fault.
#[test]
fn pooling_reads_only_its_planes() {
    use netc_runtime::kernels::panel::{self, Isa};
    if !panel::has(Isa::Avx2) {
        eprintln!("this CPU lacks AVX2: no vector pooling to check");
        return;
    }
    let _switches = switches();
    panel::limit_to_avx2(true);
    planes_against_faulting_pages();
    if panel::has(Isa::Avx512) {
        panel::limit_to_avx2(false);
        planes_against_faulting_pages();
    }
}

/// `pooling_reads_only_its_planes` on the CPU's vectors as the switches
/// leave them.
fn planes_against_faulting_pages() {
    use netc_runtime::kernels::cpu::{max_pool, max_pool_backward};
    for (i, (c, h, w, kernel, stride, same)) in [
        (3, 12, 12, [3, 3], [2, 2], true),
        (2, 24, 24, [3, 3], [2, 2], true),
        (2, 5, 7, [3, 3], [1, 1], true),
        (1, 9, 17, [2, 3], [1, 2], false),
        (4, 3, 3, [3, 3], [2, 2], true),
        (2, 4, 8, [3, 3], [1, 1], true),
        (1, 5, 32, [3, 3], [2, 2], true),
        (2, 7, 13, [3, 3], [2, 2], true),
        // A plane of one vector, windows 2 apart (`pairs`).
        (2, 9, 8, [3, 3], [2, 2], true),
    ]
    .into_iter()
    .enumerate()
    {
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
        let x: Vec<f32> = random([c, h, w, 1], i as u64).into_data().to_vec().unwrap();
        let y = max_pool(&x, h, w, win);
        let dy: Vec<f32> = (0..y.len()).map(|i| 0.25 + i as f32).collect();
        let dx = max_pool_backward(&x, &y, &dy, h, w, win);
        for at_end in [true, false] {
            let mut guarded = Guarded::new(&x, at_end);
            let what = format!("{c} x {h} x {w}, {win:?}, at the end of its pages: {at_end}");
            assert_eq!(
                bits(&max_pool(guarded.get(), h, w, win)),
                bits(&y),
                "{what}"
            );
            // The outputs and their gradient against a page of their own:
            // the whole-plane gradients load `y` 8 values at a time.
            let (mut gy, mut gdy) = (Guarded::new(&y, at_end), Guarded::new(&dy, at_end));
            let ours = max_pool_backward(guarded.get(), gy.get(), gdy.get(), h, w, win);
            assert_eq!(bits(&ours), bits(&dx), "{what}, gradient");
        }
    }
}

/// AVX2's weight gradients (`wgrad.rs`, whose transposes read a short
/// block's 8 values where they lie in the buffer) read nothing outside their
/// inputs: x, dy and the ReLU's gates each against a faulting page, at its
/// end and at its start, give the bits they give on ordinary memory. The
/// maps' positions, in and out, are not multiples of 8; one layer has fewer
/// than 8 input channels; the output channels fill no whole panel of 8.
#[test]
fn avx2_weight_gradients_read_only_their_inputs() {
    use netc_runtime::kernels::conv::Geometry;
    use netc_runtime::kernels::panel::{self, Isa};
    use netc_runtime::kernels::wgrad::weight_gradient;
    if !panel::has(Isa::Avx2) {
        eprintln!("this CPU lacks AVX2: no AVX2 weight gradients to check");
        return;
    }
    let _switches = switches();
    panel::limit_to_avx2(true);
    for (n, cin, h, w, cout, k) in [
        (3, 5, 7, 9, 11, 3),
        (2, 3, 5, 5, 13, 1),
        (4, 12, 6, 6, 20, 3),
    ] {
        let p = (k - 1) / 2;
        let g = Geometry {
            n,
            cin,
            h,
            w,
            cout,
            kernel: [k, k],
            stride: [1, 1],
            pad: [p, k - 1 - p, p, k - 1 - p],
            groups: 1,
        };
        let (oh, ow) = g.out();
        let (x, dy) = (values(n * cin * h * w, 1), values(n * cout * oh * ow, 2));
        let y = values(dy.len(), 3);
        for gated in [false, true] {
            let (dw, db) = weight_gradient(&x, &dy, gated.then_some(&y[..]), &g).expect("AVX2");
            for at_end in [true, false] {
                let mut guarded = [&x, &dy, &y].map(|v| Guarded::new(v, at_end));
                let [gx, gdy, gy] = &mut guarded;
                let (x, dy, y) = (gx.get(), gdy.get(), gy.get());
                let what = format!("{g:?}, gated {gated}, at the end of its pages: {at_end}");
                let (ours_w, ours_b) =
                    weight_gradient(x, dy, gated.then_some(&y[..]), &g).expect("AVX2");
                assert_eq!(bits(&ours_w), bits(&dw), "{what}: dW");
                assert_eq!(bits(&ours_b), bits(&db), "{what}: db");
            }
        }
    }
}

/// `values` copied into memory between two pages that can be neither read
/// nor written, flush against the end of its pages or against their start:
/// an access past the copy's edge faults, unless the CPU suppresses the
/// fault as Intel's do for masked-out lanes.
struct Guarded {
    map: *mut libc::c_void,
    size: usize,
    values: *mut f32,
    len: usize,
}

impl Guarded {
    fn new(values: &[f32], at_end: bool) -> Guarded {
        // SAFETY: sysconf, mmap and mprotect on a fresh private mapping;
        // the copy lies inside its readable pages.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            let inner = (values.len() * 4).div_ceil(page).max(1) * page;
            let size = inner + 2 * page;
            let map = libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(map, libc::MAP_FAILED, "mmap");
            let first = (map as *mut u8).add(page);
            let rw = libc::PROT_READ | libc::PROT_WRITE;
            assert_eq!(libc::mprotect(first.cast(), inner, rw), 0, "mprotect");
            let offset = if at_end { inner - values.len() * 4 } else { 0 };
            let at = first.add(offset) as *mut f32;
            std::ptr::copy_nonoverlapping(values.as_ptr(), at, values.len());
            Guarded {
                map,
                size,
                values: at,
                len: values.len(),
            }
        }
    }

    fn get(&mut self) -> &mut [f32] {
        // SAFETY: `new` copied `len` values there; the mapping lives as
        // long as `self`.
        unsafe { std::slice::from_raw_parts_mut(self.values, self.len) }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: the mapping `new` made, unmapped once.
        unsafe { libc::munmap(self.map, self.size) };
    }
}

fn convolution_cases() {
    let cases = [
        // (n, cin, h, w), (cout, kh, kw), stride, same, groups, bias
        ([2, 3, 24, 24], [8, 5, 5], [1, 1], true, 1, true),
        ([3, 4, 7, 9], [6, 3, 3], [2, 2], true, 2, true),
        ([1, 5, 6, 5], [5, 3, 3], [1, 1], true, 5, false),
        ([2, 6, 8, 8], [4, 1, 1], [1, 1], true, 1, true),
        ([2, 3, 11, 6], [4, 4, 2], [3, 1], false, 1, true),
        ([4, 2, 5, 5], [3, 4, 4], [2, 2], true, 1, false),
        ([1, 4, 3, 3], [8, 1, 1], [2, 2], false, 2, true),
        ([2, 2, 2, 3], [3, 5, 5], [1, 1], true, 1, true),
        ([1, 1, 1, 1], [2, 3, 3], [2, 2], true, 1, true),
        // 12 x 12 maps: a product per image, written into the output, from
        // a column matrix of two images side by side (two threads).
        ([4, 3, 12, 12], [5, 3, 3], [1, 1], true, 1, true),
        ([4, 4, 12, 12], [6, 3, 3], [1, 1], true, 2, false),
        // On CPUs with AVX-512 or AVX2, netc's own product (`panel.rs`):
        // channels not a multiple of 8, batch 1 (panels spread over the
        // threads), groups, 1x1 kernels (the image read in place as the
        // column matrix).
        ([1, 20, 12, 12], [11, 3, 3], [1, 1], true, 1, true),
        ([3, 32, 12, 12], [16, 3, 3], [1, 1], true, 2, true),
        ([2, 6, 12, 12], [9, 1, 1], [1, 1], true, 1, true),
        ([2, 6, 12, 12], [24, 1, 1], [1, 1], true, 3, false),
        // Partial tiles of 48 positions (169 = 3 x 48 + 25); columns
        // gathered for a strided convolution and for one without padding;
        // an even kernel (padding 0 and 1); several panels per thread at
        // batch 1; 8 channels per group, then 1 (a depthwise layer: gemm).
        ([2, 5, 13, 13], [11, 3, 3], [1, 1], true, 1, true),
        ([4, 3, 25, 25], [10, 3, 3], [2, 2], true, 1, true),
        ([2, 4, 15, 15], [16, 3, 3], [1, 1], false, 2, true),
        ([2, 4, 12, 12], [9, 2, 2], [1, 1], true, 1, false),
        ([1, 8, 12, 12], [40, 3, 3], [1, 1], true, 1, true),
        ([2, 4, 12, 12], [16, 3, 3], [1, 1], true, 2, true),
        ([2, 4, 12, 12], [4, 3, 3], [1, 1], true, 4, true),
        // Shifted im2col with uneven padding (0, 1), with as many output
        // rows as input rows but fewer, and with shifts of a whole row.
        ([1, 2, 6, 5], [3, 2, 2], [1, 1], true, 1, true),
        ([2, 2, 7, 5], [3, 3, 1], [1, 1], false, 1, false),
        ([1, 2, 3, 2], [2, 1, 5], [1, 1], true, 1, true),
        // Maps under 128 positions on AVX-512: one product per tile of
        // images, its columns gathered across them; 5 images make tiles of
        // 3 and 2 (the last gathered on its own); stride 2 and groups of 8;
        // a 1x1 kernel.
        ([5, 10, 6, 6], [12, 3, 3], [1, 1], true, 1, true),
        ([3, 6, 7, 7], [16, 3, 3], [2, 2], false, 2, false),
        ([3, 16, 5, 5], [8, 1, 1], [1, 1], true, 1, true),
        // Deeper than one pass of k (2700 > 2565 rows, whole runs of 9): the
        // tiles read their earlier sums back; shifted planes at batch 1
        // (weights where they lie) and 2 (packed), and gathered columns
        // for a tile of small maps.
        ([1, 300, 12, 12], [11, 3, 3], [1, 1], true, 1, true),
        ([2, 300, 12, 12], [16, 3, 3], [1, 1], true, 1, false),
        ([3, 300, 6, 6], [12, 3, 3], [1, 1], true, 1, true),
        // Tiles ordered to leave out the padding's taps (two threads): 6 x
        // 6 maps in tiles of 8 and a last one of 1 (plain order); 12 x 12
        // maps and their 5 x 5 input gradient, in tiles of 4.
        ([17, 5, 6, 6], [12, 3, 3], [1, 1], true, 1, true),
        ([8, 8, 12, 12], [10, 5, 5], [1, 1], true, 1, false),
        // On AVX-512, small maps with images in the vector lanes
        // (`lanes.rs`, batches of 32 and more): 5 x 5 on 12 x 12 (the
        // input a view) and its input gradient (10 channels to 6), 3 x 3
        // on 6 x 6.
        ([33, 6, 12, 12], [10, 5, 5], [1, 1], true, 1, true),
        ([40, 7, 6, 6], [9, 3, 3], [1, 1], true, 1, false),
    ];
    for (i, (shape, [cout, kh, kw], stride, same, groups, bias)) in cases.into_iter().enumerate() {
        // Every other case with a fused ReLU.
        let relu = i % 2 == 1;
        let pad = if same {
            same_pads([shape[2], shape[3]], [kh, kw], stride)
        } else {
            [0; 4]
        };
        let spec = ConvSpec {
            stride,
            pad,
            groups,
            relu,
        };
        // Every third input a view: channels cut out of a larger tensor.
        let x = if i % 3 == 0 {
            let [n, c, h, w] = shape;
            random([n, c + 2, h, w], 20 + i as u64).narrow(1, 1, c)
        } else {
            random(shape, 20 + i as u64)
        };
        let w = random([cout, shape[1] / groups, kh, kw], 40 + i as u64);
        let b = bias.then(|| random([1, 1, 1, cout], 60 + i as u64).reshape([cout]));
        let oh = (shape[2] + pad[0] + pad[1] - kh) / stride[0] + 1;
        let ow = (shape[3] + pad[2] + pad[3] - kw) / stride[1] + 1;
        let weights = random([shape[0], cout, oh, ow], 80 + i as u64);
        let ours = conv_run(&x, &w, b.as_ref(), spec, true, &weights);
        let reference = conv_run(&x, &w, b.as_ref(), spec, false, &weights);
        let names = [
            "output",
            "input gradient",
            "weight gradient",
            "bias gradient",
        ];
        for ((a, r), name) in ours.iter().zip(&reference).zip(names) {
            assert_eq!(a.len(), r.len(), "case {i} {name}: sizes");
            for (j, (x, y)) in a.iter().zip(r).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-3 * (1.0 + y.abs()),
                    "case {i} {name}: element {j}: kernel {x}, reference {y}"
                );
            }
        }
        let inner = Flex::conv(
            x.clone().into_primitive().tensor(),
            w.clone().into_primitive().tensor(),
            b.clone().map(|b| b.into_primitive().tensor()),
            spec,
        );
        let inner: Vec<f32> = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(inner))
            .into_data()
            .to_vec()
            .unwrap();
        for (x, y) in inner.iter().zip(&reference[0]) {
            assert!(
                (x - y).abs() <= 1e-3 * (1.0 + y.abs()),
                "case {i} inference: {x} vs {y}"
            );
        }
        // The convolution with the max pooling that reads it, in one pass:
        // the bits of the two layers one after the other, for TensorFlow's
        // 3x3 /2 `same` windows, 2x2 /2 `valid` ones and 3x3 /1 `same`.
        let kernel = [[3, 3], [2, 2], [3, 3]][i % 3];
        let stride = [[2, 2], [2, 2], [1, 1]][i % 3];
        if kernel[0] <= oh && kernel[1] <= ow {
            let pad = match i % 3 {
                1 => [0; 4],
                _ => same_pads([oh, ow], kernel, stride),
            };
            let win = Window {
                kernel,
                stride,
                pad,
            };
            let prim = |t: &Tensor<Flex, 4>| t.clone().into_primitive().tensor();
            let bias = || b.clone().map(|b| b.into_primitive().tensor());
            let flat = |t| -> Vec<f32> {
                let t = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(t));
                t.into_data().to_vec().unwrap()
            };
            let fused = flat(Flex::conv_pool(prim(&x), prim(&w), bias(), spec, win));
            let apart = Flex::max_pool(Flex::conv(prim(&x), prim(&w), bias(), spec), win);
            let apart = flat(apart);
            assert_eq!(fused.len(), apart.len(), "case {i} pooled: sizes");
            for (j, (a, b)) in fused.iter().zip(&apart).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "case {i} pooled: element {j}: {a} vs {b}"
                );
            }
            // And in training, where one operation keeps the convolution's
            // output for both backward passes: the output and every
            // gradient with the bits of the two operations.
            let (ph, pw) = win.out(oh, ow);
            let pooled_weights = random([shape[0], cout, ph, pw], 100 + i as u64);
            let pooled = |fused: bool| {
                with_grads((&x, &w, b.as_ref()), &pooled_weights, |x, w, b| {
                    let p = |t: Tensor<B, 4>| t.into_primitive().tensor();
                    let y = match fused {
                        true => {
                            let bias = b.map(|b| b.into_primitive().tensor());
                            B::conv_pool(p(x), p(w), bias, spec, win)
                        }
                        false => B::max_pool(p(kernel_conv(x, w, b, spec)), win),
                    };
                    Tensor::from_primitive(TensorPrimitive::Float(y))
                })
            };
            let all_bits = |v: Vec<Vec<f32>>| v.iter().map(|v| bits(v)).collect::<Vec<_>>();
            assert_eq!(
                all_bits(pooled(true)),
                all_bits(pooled(false)),
                "case {i}: pooled in training"
            );
            // And on the autodiff backend with nothing to differentiate,
            // which keeps no output: inference's bits.
            let tracked = |t: &Tensor<Flex, 4>| Tensor::<B, 4>::from_inner(t.clone());
            let p = |t: Tensor<B, 4>| t.into_primitive().tensor();
            let bias_b = b
                .clone()
                .map(|b| Tensor::<B, 1>::from_inner(b).into_primitive().tensor());
            let untracked = B::conv_pool(p(tracked(&x)), p(tracked(&w)), bias_b, spec, win);
            let untracked = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(untracked));
            let untracked: Vec<f32> = untracked.inner().into_data().to_vec().unwrap();
            assert_eq!(bits(&untracked), bits(&fused), "case {i}: pooled untracked");
        }
    }
}

#[test]
fn concatenation_matches_burn_and_splits_the_gradient() {
    // Three parts (joined pairwise), the middle one a view.
    let a = random([3, 2, 5, 4], 1);
    let b = random([3, 6, 5, 4], 2).narrow(1, 1, 3);
    let c = random([3, 1, 5, 4], 3);
    let weights = random([3, 6, 5, 4], 4);
    let run = |ours: bool| {
        let parts: Vec<Tensor<B, 4>> = [&a, &b, &c]
            .iter()
            .map(|t| Tensor::<B, 4>::from_inner((*t).clone()).require_grad())
            .collect();
        let y = if ours {
            netc_runtime::nn::concat(parts.clone())
        } else {
            Tensor::cat(parts.clone(), 1)
        };
        let grads = (y.clone() * Tensor::from_inner(weights.clone()))
            .sum()
            .backward();
        let mut out = vec![y.inner()];
        out.extend(parts.iter().map(|p| p.grad(&grads).unwrap()));
        out
    };
    let (ours, reference) = (run(true), run(false));
    let names = ["output", "gradient 1", "gradient 2", "gradient 3"];
    for ((o, r), name) in ours.into_iter().zip(reference).zip(names) {
        close(o, r, name);
    }
}

/// Convolutions joined along channels, each written into its channels of
/// the joined output (`conv_concat` on burn's CPU backend): the bits of
/// each convolution, then the concatenation, in inference and in training
/// (the output and every gradient), and, pooled in the same pass
/// (`conv_concat_pool`), the bits of the pooling after them; on every path
/// of the products (each CPU's, AVX2's, gemm's).
#[test]
fn joined_convolutions_give_the_bits_of_each_then_the_concatenation() {
    let _switches = switches();
    on_every_product_path(joined_convolution_cases);
}

fn joined_convolution_cases() {
    // (n, cin, h, w), stride, groups, then each part's (cout, kernel, relu, bias)
    let fire = |n, c, hw, e1, e3| {
        (
            [n, c, hw, hw],
            1,
            1,
            vec![(e1, 1, true, true), (e3, 3, true, true)],
        )
    };
    let cases = [
        // squeeze1's fire modules, smaller: 12 x 12 maps (a product per
        // image), 6 x 6 maps (a product per tile of images, gathered; 5
        // images make tiles of 3 and 2), batch 1 (threads inside each
        // product).
        fire(4, 16, 12, 16, 16),
        fire(5, 32, 6, 24, 40),
        // A tile ordered to leave out the 3 x 3 part's padding, which the
        // 1x1 part shares: 8, 8 and 1 images.
        fire(17, 16, 6, 16, 24),
        fire(1, 16, 12, 16, 8),
        fire(1, 32, 6, 32, 32),
        // Two groups (each part's channels of a group at their offset), a
        // part without bias or ReLU: in training, one operation.
        (
            [4, 16, 12, 12],
            1,
            2,
            vec![(16, 1, true, false), (8, 3, false, true)],
        ),
        // Stride 2 (7 x 7 maps from 13 x 13), neither part with a bias.
        (
            [3, 8, 13, 13],
            2,
            1,
            vec![(8, 3, true, false), (16, 1, true, false)],
        ),
        // Fewer than 8 channels (gemm's products), three parts, no bias,
        // a 5 x 5 kernel, no ReLU.
        (
            [3, 4, 7, 9],
            1,
            1,
            vec![
                (3, 3, false, true),
                (16, 1, true, false),
                (5, 5, false, false),
            ],
        ),
    ];
    for (i, (shape, stride, groups, parts)) in cases.into_iter().enumerate() {
        let x = random(shape, 10 + i as u64);
        let [_, cin, h, w] = shape;
        let parts: Vec<_> = parts
            .into_iter()
            .enumerate()
            .map(|(j, (cout, k, relu, bias))| {
                let seed = 100 * i as u64 + 2 * j as u64;
                let weight = random([cout, cin / groups, k, k], seed);
                let bias = bias.then(|| random([cout, 1, 1, 1], seed + 1).reshape([cout]));
                let pad = same_pads([h, w], [k, k], [stride, stride]);
                let spec = ConvSpec {
                    stride: [stride, stride],
                    pad,
                    groups,
                    relu,
                };
                (weight, bias, spec)
            })
            .collect();
        let p = |t: &Tensor<Flex, 4>| t.clone().into_primitive().tensor();
        let prims = || {
            parts
                .iter()
                .map(|(w, b, spec)| (p(w), b.clone().map(|b| b.into_primitive().tensor()), *spec))
        };
        let flat = |t: FloatTensor<Flex>| {
            let t = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(t));
            t.into_data().to_vec::<f32>().unwrap()
        };
        let joined = flat(Flex::conv_concat(p(&x), prims().collect()));
        let apart = prims()
            .map(|(w, b, spec)| Flex::conv(p(&x), w, b, spec))
            .reduce(Flex::concat)
            .unwrap();
        let out = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(apart.clone())).dims();
        assert_eq!(bits(&joined), bits(&flat(apart)), "case {i}");
        // Pooled in the same pass (`conv_concat_pool`), through windows 2
        // apart with TensorFlow's `same` padding (squeeze1's pool2) and 1
        // apart without: the bits of the pooling of the joined output, on
        // tiles of images and at batch 1, with and without a ReLU on every
        // part (the NaN-free loops or not).
        let [_, _, oh, ow] = out;
        for win in [
            Window {
                kernel: [3, 3],
                stride: [2, 2],
                pad: same_pads([oh, ow], [3, 3], [2, 2]),
            },
            Window {
                kernel: [2, 2],
                stride: [1, 1],
                pad: [0; 4],
            },
        ] {
            // And with a NaN in the input, which a part without a ReLU
            // carries into the joined output: its pooling must keep it.
            let mut with_nan = x.clone().into_data().to_vec::<f32>().unwrap();
            with_nan[w + 1] = f32::NAN;
            let with_nan = TensorData::new(with_nan, shape);
            let with_nan = Tensor::<Flex, 4>::from_data(with_nan, &x.device());
            for x in [&x, &with_nan] {
                let fused = flat(Flex::conv_concat_pool(p(x), prims().collect(), win));
                let joined = Flex::conv_concat(p(x), prims().collect());
                let apart = flat(Flex::max_pool(joined, win));
                assert_eq!(
                    bits(&fused),
                    bits(&apart),
                    "case {i}, pooled through {win:?}"
                );
            }
        }
        // Training: the output and the gradients of the input and of every
        // weight and bias, joined in one operation (two parts) or not.
        let weights = random(out, 7);
        let train = |together: bool| {
            let x = Tensor::<B, 4>::from_inner(x.clone()).require_grad();
            let params: Vec<_> = parts
                .iter()
                .map(|(w, b, spec)| {
                    let w = Tensor::<B, 4>::from_inner(w.clone()).require_grad();
                    let b = b
                        .clone()
                        .map(|b| Tensor::<B, 1>::from_inner(b).require_grad());
                    (w, b, *spec)
                })
                .collect();
            let p = |t: Tensor<B, 4>| t.into_primitive().tensor();
            let prims = params.iter().map(|(w, b, spec)| {
                (
                    p(w.clone()),
                    b.clone().map(|b| b.into_primitive().tensor()),
                    *spec,
                )
            });
            let y = if together {
                B::conv_concat(p(x.clone()), prims.collect())
            } else {
                prims
                    .map(|(w, b, spec)| B::conv(p(x.clone()), w, b, spec))
                    .reduce(B::concat)
                    .unwrap()
            };
            let y = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(y));
            let grads = (y.clone() * Tensor::from_inner(weights.clone()))
                .sum()
                .backward();
            let flat = |t: Tensor<Flex, 4>| t.into_data().to_vec::<f32>().unwrap();
            let mut out = vec![flat(y.inner()), flat(x.grad(&grads).unwrap())];
            for (w, b, _) in &params {
                out.push(flat(w.grad(&grads).unwrap()));
                if let Some(b) = b {
                    out.push(b.grad(&grads).unwrap().into_data().to_vec().unwrap());
                }
            }
            out
        };
        for (k, (a, b)) in train(true).iter().zip(train(false)).enumerate() {
            assert_eq!(
                bits(a),
                bits(&b),
                "case {i}, training: output or gradient {k}"
            );
        }
    }
}

/// netc's dropout in training: about the asked share of values dropped,
/// the rest scaled, the gradient through the same mask; and the input as
/// it is in inference. (Masks against seeds and thread counts are tested
/// in `kernels/dropout.rs`: the tests here share the backend's generator.)
#[test]
fn dropout_drops_the_asked_share_and_its_gradient_follows_the_mask() {
    let device = Default::default();
    // Several chunks of 16,384 values, for the threads to share.
    let x = random([4, 16, 32, 32], 5).abs() + 0.5;
    let weights = random([4, 16, 32, 32], 6);
    let layer = netc_runtime::nn::Dropout { prob: 0.3 };
    B::seed(&device, 9);
    let (y, dx) = run(&x, |x| layer.forward(x), &weights);
    let flat = |t: Tensor<Flex, 4>| t.into_data().to_vec::<f32>().unwrap();
    let (y, dx, xs, ws) = (flat(y), flat(dx), flat(x.clone()), flat(weights.clone()));
    let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
    assert!((dropped - 0.3).abs() < 0.03, "dropped {dropped}");
    let scale = (1.0 / 0.7f64) as f32;
    for i in 0..y.len() {
        let (kept_y, kept_dx) = match y[i] == 0.0 {
            true => (0.0, 0.0),
            false => (xs[i] * scale, ws[i] * scale),
        };
        assert_eq!((y[i], dx[i]), (kept_y, kept_dx), "value {i}");
    }
    let inference = layer.forward(x.clone());
    assert_eq!(flat(inference), xs);
}

/// Fully connected layers through netc (`nn::dense`, `nn::dense_relu`):
/// burn's `Linear` in inference, for a few rows (netc's kernel) and for
/// more (burn's product), from a view too; and in training, the same input
/// and weight gradients.
#[test]
fn fully_connected_layers_match_burn_in_inference_and_training() {
    use burn::module::AutodiffModule;
    use burn::nn::LinearConfig;
    let _switches = switches();
    let device = Default::default();
    for (rows, k, units, bias) in [
        (1, 3456, 384, true),
        (2, 300, 17, false),
        (4, 129, 10, true),
        (5, 64, 33, true),
        (128, 70, 20, false),
    ] {
        Flex::seed(&device, rows as u64);
        let layer = LinearConfig::new(k, units)
            .with_bias(bias)
            .init::<B>(&device);
        // Columns 1.. of a wider tensor: a view, not contiguous.
        let x = Tensor::<Flex, 2>::random([rows, k + 1], Distribution::Normal(0.0, 1.0), &device)
            .narrow(1, 1, k);
        let inner = layer.valid();
        for relu in [false, true] {
            let what = format!("{rows}x{k}x{units}, bias {bias}, relu {relu}");
            let ours = match relu {
                true => netc_runtime::nn::dense_relu(&inner, x.clone()),
                false => netc_runtime::nn::dense(&inner, x.clone()),
            };
            let reference = inner.forward(x.clone());
            let reference = match relu {
                true => burn::tensor::activation::relu(reference),
                false => reference,
            };
            close(ours.unsqueeze(), reference.unsqueeze(), &what);
        }
        // Training: the output and the gradients of the input and weight.
        let grads = |ours: bool| {
            let x = Tensor::<B, 2>::from_inner(x.clone()).require_grad();
            let y = match ours {
                true => netc_runtime::nn::dense_relu(&layer, x.clone()),
                false => burn::tensor::activation::relu(layer.forward(x.clone())),
            };
            let g = y.clone().sum().backward();
            let dw = layer.weight.grad(&g).expect("a weight gradient");
            (y.inner(), x.grad(&g).expect("an input gradient"), dw)
        };
        let (ours, reference) = (grads(true), grads(false));
        close(
            ours.0.unsqueeze(),
            reference.0.unsqueeze(),
            "training output",
        );
        close(
            ours.1.unsqueeze(),
            reference.1.unsqueeze(),
            "input gradient",
        );
        close(
            ours.2.unsqueeze(),
            reference.2.unsqueeze(),
            "weight gradient",
        );
    }
}
