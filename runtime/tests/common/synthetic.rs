//! Synthetic CIFAR-10 data for tests, shared by the runtime's tests and the
//! workspace's integration tests (`tests/lib.rs` includes this file).

use std::path::Path;

/// Every pixel of color plane `plane` (0 red, 1 green, 2 blue) of image `i`
/// of each file `synthetic_cifar` writes: its label is `i % 10`.
pub fn synthetic_value(i: usize, plane: u8) -> u8 {
    ((i % 10) as u8)
        .wrapping_mul(25)
        .wrapping_add(plane * 80)
        .wrapping_add((i % 7) as u8)
}

/// CIFAR-10 binary batches (`data_batch_1..5.bin`, `test_batch.bin`) of `n`
/// 32x32 images in `dir`: 10 classes told apart by color, easy to learn in a
/// few dozen steps.
pub fn synthetic_cifar(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut bytes = Vec::new();
    for i in 0..n {
        bytes.push((i % 10) as u8);
        for plane in 0..3u8 {
            bytes.extend(std::iter::repeat_n(synthetic_value(i, plane), 1024));
        }
    }
    for i in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), &bytes).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), &bytes[..n.min(100) * 3073]).unwrap();
}
