//! What several of the compiler's test files share: tiny synthetic data.

use std::path::Path;

/// Binary CIFAR batches of 20 images, 10 classes told apart by color.
pub fn synthetic(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut bytes = Vec::new();
    for i in 0..20u8 {
        bytes.push(i % 10);
        bytes.extend(std::iter::repeat_n((i % 10) * 25, 3072));
    }
    for i in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), &bytes).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), &bytes).unwrap();
}
