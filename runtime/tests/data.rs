//! Both data formats, good and bad, on small files made here.

use netc_runtime::data::{self, Split, PIXELS, RECORD};
use std::path::Path;

/// A binary batch of `n` records: label i % 10, pixels R=label, G=i, B=255.
fn batch(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push((i % 10) as u8);
        out.extend(std::iter::repeat_n((i % 10) as u8, 1024));
        out.extend(std::iter::repeat_n(i as u8, 1024));
        out.extend(std::iter::repeat_n(255u8, 1024));
    }
    out
}

fn write_binary(dir: &Path, records: usize) {
    for i in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), batch(records)).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), batch(records)).unwrap();
}

#[test]
fn binary_batches_load_with_interleaved_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&bin).unwrap();
    write_binary(&bin, 12);
    let train = data::load(dir.path(), Split::Train).unwrap();
    assert_eq!(train.len(), 60);
    assert_eq!(train.labels[3], 3);
    // Pixel 0 of record 3: R = 3, G = 3, B = 255.
    assert_eq!(&train.image(3)[..3], &[3, 3, 255]);
    assert_eq!(train.image(3).len(), PIXELS);
    assert_eq!(train.classes[0], "airplane");
    let test = data::load(&bin, Split::Test).unwrap();
    assert_eq!(test.len(), 12);
}

#[test]
fn a_truncated_batch_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_binary(dir.path(), 4);
    let path = dir.path().join("data_batch_3.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(RECORD * 2 + 100);
    std::fs::write(&path, bytes).unwrap();
    let e = data::load(dir.path(), Split::Train).unwrap_err();
    assert!(
        e.contains("data_batch_3.bin") && e.contains("truncated"),
        "{e}"
    );
}

#[test]
fn a_label_out_of_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_binary(dir.path(), 4);
    let path = dir.path().join("test_batch.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[RECORD] = 42;
    std::fs::write(&path, bytes).unwrap();
    let e = data::load(dir.path(), Split::Test).unwrap_err();
    assert!(
        e.contains("test_batch.bin") && e.contains("label 42"),
        "{e}"
    );
}

fn png(path: &Path, rgb: [u8; 3], side: u32) {
    let img = image::RgbImage::from_pixel(side, side, image::Rgb(rgb));
    img.save(path).unwrap();
}

#[test]
fn image_folders_load_sorted_classes_and_resize() {
    let dir = tempfile::tempdir().unwrap();
    for (class, color) in [("cat", [200, 0, 0]), ("airplane", [0, 0, 200])] {
        let d = dir.path().join("train").join(class);
        std::fs::create_dir_all(&d).unwrap();
        png(&d.join("1.png"), color, 32);
        png(&d.join("2.png"), color, 40);
    }
    let train = data::load(dir.path(), Split::Train).unwrap();
    assert_eq!(train.classes, ["airplane", "cat"]);
    assert_eq!(train.labels, [0, 0, 1, 1]);
    assert_eq!(&train.image(0)[..3], &[0, 0, 200]);
    // The 40x40 image was scaled to 32x32.
    assert_eq!(&train.image(3)[..3], &[200, 0, 0]);
}

#[test]
fn an_unreadable_image_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("train").join("cat");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("broken.jpg"), b"not a jpeg").unwrap();
    let e = data::load(dir.path(), Split::Train).unwrap_err();
    assert!(e.contains("broken.jpg") && e.contains("unreadable"), "{e}");
}

#[test]
fn an_empty_class_names_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("train");
    std::fs::create_dir_all(d.join("dog")).unwrap();
    std::fs::create_dir_all(d.join("cat")).unwrap();
    png(&d.join("cat").join("1.png"), [1, 2, 3], 32);
    let e = data::load(dir.path(), Split::Train).unwrap_err();
    assert!(e.contains("dog") && e.contains("empty class"), "{e}");
}

#[test]
fn a_folder_without_data_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = data::load(dir.path(), Split::Train).unwrap_err();
    assert!(e.contains("netc data cifar10"), "{e}");
}

/// `split/<class>/1.png` for each class.
fn folders(root: &Path, split: &str, classes: &[&str]) {
    for class in classes {
        let d = root.join(split).join(class);
        std::fs::create_dir_all(&d).unwrap();
        png(&d.join("1.png"), [9, 9, 9], 32);
    }
}

#[test]
fn splits_whose_classes_differ_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    folders(dir.path(), "train", &["bird", "cat", "dog"]);
    // The test split lacks `cat`: its `dog` would get cat's label.
    folders(dir.path(), "test", &["bird", "dog", "frog"]);
    for split in [Split::Train, Split::Test] {
        let e = data::load(dir.path(), split).unwrap_err();
        assert!(
            e.contains("test lacks cat") && e.contains("train lacks frog"),
            "{e}"
        );
        assert!(e.contains("both splits"), "{e}");
    }
}

#[test]
fn an_image_claiming_a_huge_size_is_refused_without_allocating_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("train").join("cat");
    std::fs::create_dir_all(&d).unwrap();
    // A PNG header for 30000 x 30000 pixels and no pixel data.
    std::fs::write(d.join("huge.png"), png_header(30_000, 30_000)).unwrap();
    let e = data::load(dir.path(), Split::Train).unwrap_err();
    assert!(e.contains("huge.png") && e.contains("unreadable"), "{e}");
}

/// A PNG signature and a valid IHDR chunk (8-bit RGB) of the given size.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut chunk = b"IHDR".to_vec();
    chunk.extend(width.to_be_bytes());
    chunk.extend(height.to_be_bytes());
    chunk.extend([8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(13u32.to_be_bytes());
    out.extend(&chunk);
    out.extend(crc32fast::hash(&chunk).to_be_bytes());
    out
}
