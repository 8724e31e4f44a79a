//! The seed's input pipeline (TensorFlow's CIFAR-10 tutorial): random crop,
//! left-right flip, brightness and contrast while training, then per-image
//! standardization. Images here are H x W x 3 floats in 0..255.

use crate::data::SIDE;
use rand::Rng;

/// The largest brightness change, in pixel levels.
pub const MAX_BRIGHTNESS: f32 = 63.0;
pub const CONTRAST: (f32, f32) = (0.2, 1.8);

/// An `h` x `w` window of a 32 x 32 x 3 image, from (`top`, `left`).
pub fn crop(image: &[u8], top: usize, left: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(h * w * 3);
    for y in top..top + h {
        let row = &image[(y * SIDE + left) * 3..(y * SIDE + left + w) * 3];
        out.extend(row.iter().map(|&b| f32::from(b)));
    }
    out
}

pub fn flip_left_right(image: &mut [f32], w: usize) {
    for row in image.chunks_exact_mut(w * 3) {
        for x in 0..w / 2 {
            for c in 0..3 {
                row.swap(x * 3 + c, (w - 1 - x) * 3 + c);
            }
        }
    }
}

pub fn brightness(image: &mut [f32], delta: f32) {
    image.iter_mut().for_each(|v| *v += delta);
}

/// (x - mean) * factor + mean, with the mean taken per channel.
pub fn contrast(image: &mut [f32], factor: f32) {
    let pixels = (image.len() / 3) as f32;
    for c in 0..3 {
        let mean = image.iter().skip(c).step_by(3).sum::<f32>() / pixels;
        image
            .iter_mut()
            .skip(c)
            .step_by(3)
            .for_each(|v| *v = (*v - mean) * factor + mean);
    }
}

/// (x - mean) / max(stddev, 1 / sqrt(N)) over the whole image.
pub fn standardize(image: &mut [f32]) {
    let n = image.len() as f32;
    let mean = image.iter().sum::<f32>() / n;
    let var = image.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let scale = var.sqrt().max(1.0 / n.sqrt());
    image.iter_mut().for_each(|v| *v = (*v - mean) / scale);
}

/// A training example: random crop, and with `augment` flip, brightness and
/// contrast; always standardized. Without augmentation the crop is central.
pub fn train_example(
    image: &[u8],
    h: usize,
    w: usize,
    augment: bool,
    rng: &mut impl Rng,
) -> Vec<f32> {
    if !augment {
        return eval_example(image, h, w);
    }
    let top = rng.random_range(0..=SIDE - h);
    let left = rng.random_range(0..=SIDE - w);
    let mut x = crop(image, top, left, h, w);
    if rng.random_bool(0.5) {
        flip_left_right(&mut x, w);
    }
    brightness(&mut x, rng.random_range(-MAX_BRIGHTNESS..=MAX_BRIGHTNESS));
    contrast(&mut x, rng.random_range(CONTRAST.0..=CONTRAST.1));
    standardize(&mut x);
    x
}

/// An evaluation example: the central crop, standardized.
pub fn eval_example(image: &[u8], h: usize, w: usize) -> Vec<f32> {
    let mut x = crop(image, (SIDE - h) / 2, (SIDE - w) / 2, h, w);
    standardize(&mut x);
    x
}

/// H x W x C to C x H x W, the layout burn's convolutions read.
pub fn to_chw(hwc: &[f32], h: usize, w: usize, out: &mut Vec<f32>) {
    for c in 0..3 {
        out.extend((0..h * w).map(|p| hwc[p * 3 + c]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Vec<u8> {
        (0..SIDE * SIDE * 3).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn crop_takes_the_window() {
        let img = image();
        let x = crop(&img, 4, 4, 24, 24);
        assert_eq!(x.len(), 24 * 24 * 3);
        // Pixel (0, 0) of the crop is pixel (4, 4) of the image.
        let at = (4 * SIDE + 4) * 3;
        assert_eq!(
            &x[..3],
            &[img[at] as f32, img[at + 1] as f32, img[at + 2] as f32]
        );
        // Pixel (1, 2) of the crop is pixel (5, 6).
        let at = (5 * SIDE + 6) * 3 + 1;
        assert_eq!(x[(24 + 2) * 3 + 1], img[at] as f32);
    }

    #[test]
    fn flip_mirrors_each_row() {
        // A 1 x 3 image: pixels a, b, c become c, b, a.
        let mut x = vec![1., 2., 3., 4., 5., 6., 7., 8., 9.];
        flip_left_right(&mut x, 3);
        assert_eq!(x, vec![7., 8., 9., 4., 5., 6., 1., 2., 3.]);
    }

    #[test]
    fn brightness_adds_delta() {
        let mut x = vec![0., 10., 255.];
        brightness(&mut x, -5.0);
        assert_eq!(x, vec![-5., 5., 250.]);
    }

    #[test]
    fn contrast_scales_around_each_channel_mean() {
        // Two pixels: red 10 and 30 (mean 20), green 0 and 0, blue 5 and 15 (mean 10).
        let mut x = vec![10., 0., 5., 30., 0., 15.];
        contrast(&mut x, 0.5);
        assert_eq!(x, vec![15., 0., 7.5, 25., 0., 12.5]);
    }

    #[test]
    fn standardize_gives_zero_mean_unit_variance() {
        let mut x = vec![1., 2., 3., 4.];
        standardize(&mut x);
        // mean 2.5, stddev sqrt(1.25)
        let s = 1.25f32.sqrt();
        let want = [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s];
        for (a, b) in x.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn standardize_of_a_flat_image_divides_by_the_floor() {
        // stddev 0: divide by 1/sqrt(4) = 0.5.
        let mut x = vec![7., 7., 7., 9.];
        let mean = 7.5;
        let std = (((0.5f32 * 0.5) * 3.0 + 1.5 * 1.5) / 4.0).sqrt();
        standardize(&mut x);
        assert!((x[3] - (9.0 - mean) / std.max(0.5)).abs() < 1e-6);
        let mut flat = vec![7.0f32; 4];
        standardize(&mut flat);
        assert_eq!(flat, vec![0.0; 4]);
    }

    #[test]
    fn eval_uses_the_central_crop() {
        let img = image();
        let x = eval_example(&img, 24, 24);
        let mut want = crop(&img, 4, 4, 24, 24);
        standardize(&mut want);
        assert_eq!(x, want);
    }

    #[test]
    fn chw_puts_channels_first() {
        let hwc = vec![1., 2., 3., 4., 5., 6.]; // two pixels
        let mut out = Vec::new();
        to_chw(&hwc, 1, 2, &mut out);
        assert_eq!(out, vec![1., 4., 2., 5., 3., 6.]);
    }
}
