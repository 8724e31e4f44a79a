//! The runtime's readers fed damaged files: safetensors checkpoints and
//! weight files (truncated, bit-flipped, wrong dtype, shape or offsets, NaN),
//! CIFAR-10 binary batches and image folders with garbage images. Each gives
//! the data or an error naming the file; none panics, and a header claiming
//! a huge size allocates nothing.

mod common;

use burn::backend::Flex;
use common::Tiny;
use netc_runtime::checkpoint::Checkpoint;
use netc_runtime::data::{self, Split, PIXELS, RECORD};
use netc_runtime::params::Named;
use netc_runtime::{burn, params, Net};
use proptest::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// A checkpoint of the test network, raw and averaged, as bytes.
fn good_checkpoint() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("good.safetensors");
        let raw = params::collect(&Tiny::<Flex>::init(&Default::default()));
        Checkpoint {
            averaged: Some(raw.clone()),
            raw,
            metadata: [("step", "7"), ("model", "tiny")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            ..Checkpoint::default()
        }
        .save(&path)
        .unwrap();
        std::fs::read(path).unwrap()
    })
}

/// Edits of the header's text: other dtypes, shapes, offsets and lengths.
const HEADER_EDITS: &[(&str, &str)] = &[
    ("F32", "F64"),
    ("F32", "F16"),
    ("F32", "I64"),
    ("F32", "BOOL"),
    ("F32", "XYZ"),
    ("[64,10]", "[64,11]"),
    ("[64,10]", "[10,64]"),
    ("[64,10]", "[18446744073709551615,2]"),
    ("[64,10]", "[]"),
    ("[4,3,3,3]", "[4,3,3]"),
    ("\"data_offsets\":[0,", "\"data_offsets\":[4,"),
    ("\"data_offsets\":[0,", "\"data_offsets\":[99999999999,"),
    ("\"step\":\"7\"", "\"step\":7"),
    ("__metadata__", "conv.weight"),
    ("{", "["),
];

#[derive(Debug, Clone)]
enum Damage {
    Truncate(usize),
    Flip(usize, u8),
    HeaderLength(u64),
    Edit(usize),
    Nan(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    let len = good_checkpoint().len();
    prop_oneof![
        (0..len).prop_map(Damage::Truncate),
        (0..len, 0..8u8).prop_map(|(at, bit)| Damage::Flip(at, bit)),
        // Flips in the header, where they matter most.
        (0..400usize, 0..8u8).prop_map(|(at, bit)| Damage::Flip(at, bit)),
        prop_oneof![
            Just(u64::MAX),
            Just(1u64 << 40),
            Just(len as u64),
            0..1000u64
        ]
        .prop_map(Damage::HeaderLength),
        (0..HEADER_EDITS.len()).prop_map(Damage::Edit),
        (0..len / 4).prop_map(Damage::Nan),
    ]
}

fn damaged(d: &Damage) -> Vec<u8> {
    let mut b = good_checkpoint().to_vec();
    match *d {
        Damage::Truncate(n) => b.truncate(n),
        Damage::Flip(at, bit) => b[at] ^= 1 << bit,
        Damage::HeaderLength(n) => b[..8].copy_from_slice(&n.to_le_bytes()),
        Damage::Edit(i) => {
            let (from, to) = HEADER_EDITS[i];
            let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
            let header = String::from_utf8(b[8..8 + n].to_vec()).unwrap();
            let header = header.replacen(from, to, 1);
            let mut out = (header.len() as u64).to_le_bytes().to_vec();
            out.extend(header.as_bytes());
            out.extend(&b[8 + n..]);
            b = out;
        }
        // A NaN wherever 4 aligned bytes of the data happen to be.
        Damage::Nan(i) => {
            let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
            let at = 8 + n + 4 * i;
            if at + 4 <= b.len() {
                b[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
            }
        }
    }
    b
}

/// A file read as weights: an error naming it, or finite tensors whose
/// values fill their shapes, which then load or are refused by the model.
fn read_weights(path: &Path) -> std::result::Result<(), TestCaseError> {
    let name = path.file_name().unwrap().to_str().unwrap();
    match Checkpoint::load_weights(path) {
        Err(e) => prop_assert!(e.contains(name), "{e}"),
        Ok(ck) => {
            for (n, t) in ck.raw.iter().chain(ck.averaged.iter().flatten()) {
                prop_assert_eq!(t.values.len(), t.shape.iter().product::<usize>(), "{}", n);
                prop_assert!(t.values.iter().all(|v| v.is_finite()), "{}", n);
            }
            let model = Tiny::<Flex>::init(&Default::default());
            if let Err(e) = params::load(model, &ck.raw, path) {
                prop_assert!(e.contains(name), "{e}");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn damaged_checkpoints_are_refused_naming_the_file(d in damage()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.safetensors");
        std::fs::write(&path, damaged(&d)).unwrap();
        read_weights(&path)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn damaged_binary_batches_are_refused_naming_the_file(
        records in 0..4usize,
        extra in prop_oneof![Just(0usize), 0..RECORD],
        labels in proptest::collection::vec(any::<u8>(), 4),
        meta in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = vec![7u8; records * RECORD + extra];
        for (r, l) in labels.iter().enumerate().take(records) {
            bytes[r * RECORD] = *l;
        }
        std::fs::write(dir.path().join("test_batch.bin"), &bytes).unwrap();
        std::fs::write(dir.path().join("batches.meta.txt"), &meta).unwrap();
        match data::load(dir.path(), Split::Test) {
            Err(e) => prop_assert!(e.contains("test_batch.bin"), "{e}"),
            Ok(d) => {
                prop_assert_eq!(d.len(), records);
                prop_assert_eq!(d.images.len(), records * PIXELS);
                prop_assert!(d.labels.iter().all(|&l| usize::from(l) < d.classes.len()));
            }
        }
    }

    #[test]
    fn garbage_images_are_refused_naming_the_file(
        garbage in proptest::collection::vec(any::<u8>(), 0..300),
        cut in 0..200usize,
        flip in 0..200usize,
        jpg in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let class = dir.path().join("train/cat");
        std::fs::create_dir_all(&class).unwrap();
        // A real PNG, cut short and with a flipped bit, or plain garbage.
        let mut png = Vec::new();
        image::RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3]))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let flip = flip % png.len();
        png[flip] ^= 0x10;
        png.truncate(cut.max(9));
        std::fs::write(class.join("real.png"), &png).unwrap();
        let name = if jpg { "noise.jpg" } else { "noise.png" };
        std::fs::write(class.join(name), &garbage).unwrap();
        match data::load(dir.path(), Split::Train) {
            Err(e) => prop_assert!(e.contains(".png") || e.contains(".jpg"), "{e}"),
            Ok(d) => prop_assert_eq!(d.images.len(), d.len() * PIXELS),
        }
    }
}

/// The process's high-water mark of resident memory, in bytes.
fn peak_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn sizes_claimed_by_headers_are_not_allocated() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let before = peak_memory();
    // Header lengths, tensor shapes and offsets of terabytes.
    let path = dir.path().join("huge.safetensors");
    for d in [
        Damage::HeaderLength(1 << 40),
        Damage::HeaderLength(u64::MAX),
        Damage::Edit(7),
        Damage::Edit(11),
    ] {
        std::fs::write(&path, damaged(&d)).unwrap();
        let e = Checkpoint::load_weights(&path).unwrap_err();
        assert!(e.contains("huge.safetensors"), "{e}");
    }
    // A PNG claiming 4 GB of pixels.
    let class = dir.path().join("train/cat");
    std::fs::create_dir_all(&class).unwrap();
    let mut chunk = b"IHDR".to_vec();
    chunk.extend(40_000u32.to_be_bytes());
    chunk.extend(40_000u32.to_be_bytes());
    chunk.extend([8, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&chunk);
    png.extend(crc32fast::hash(&chunk).to_be_bytes());
    png.extend(vec![0u8; 64]);
    std::fs::write(class.join("huge.png"), &png).unwrap();
    let e = data::load(dir.path(), Split::Train).unwrap_err();
    assert!(e.contains("huge.png"), "{e}");
    let grown = peak_memory().saturating_sub(before);
    assert!(grown < 256 << 20, "reading grew memory by {grown} bytes");
}

#[test]
fn a_tensor_of_unknown_name_or_wrong_dtype_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ints.safetensors");
    std::fs::write(&path, damaged(&Damage::Edit(2))).unwrap();
    let e = Checkpoint::load(&path).unwrap_err();
    assert!(e.contains("ints.safetensors"), "{e}");
    let good = dir.path().join("good.safetensors");
    std::fs::write(&good, good_checkpoint()).unwrap();
    let ck = Checkpoint::load_weights(&good).unwrap();
    let fc: &Named = &ck.raw["fc.weight"];
    assert_eq!(fc.shape, [64, 10]);
}
