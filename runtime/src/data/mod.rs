//! CIFAR-10 in memory, from the official binary batches or from image folders.

mod binary;
mod folder;

use crate::Result;
use std::path::{Path, PathBuf};

pub use binary::{read_batch, RECORD};
pub use folder::read_folder;

/// The side of a CIFAR-10 image: every dataset is held at 32x32.
pub const SIDE: usize = 32;
pub const PIXELS: usize = SIDE * SIDE * 3;

pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Images as bytes, 32 x 32 x 3 each, rows then columns then RGB.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub classes: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * PIXELS..(i + 1) * PIXELS]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// The layouts `load` understands, found under a data directory.
enum Layout {
    /// `data_batch_1.bin` ... `data_batch_5.bin`, `test_batch.bin`
    Binary(PathBuf),
    /// `train/<class>/*.png|jpg`, `test/<class>/...`
    Folders(PathBuf),
}

fn find_layout(dir: &Path) -> Result<Layout> {
    let candidates = [
        dir.to_path_buf(),
        dir.join("cifar-10-batches-bin"),
        dir.join("cifar10-jpg"),
    ];
    for d in &candidates {
        if d.join("data_batch_1.bin").is_file() || d.join("test_batch.bin").is_file() {
            return Ok(Layout::Binary(d.clone()));
        }
        if d.join("train").is_dir() || d.join("test").is_dir() {
            return Ok(Layout::Folders(d.clone()));
        }
    }
    Err(format!(
        "{}: no CIFAR-10 data found. Expected cifar-10-batches-bin/ (data_batch_1.bin ... test_batch.bin) \
         or image folders train/<class>/ and test/<class>/. Get it with `netc data cifar10 {}`, or extract \
         ../shared/data/cifar10-jpg.tar.gz there",
        dir.display(),
        dir.display()
    ))
}

/// Loads one split of the data found under `dir`.
pub fn load(dir: &Path, split: Split) -> Result<Dataset> {
    match find_layout(dir)? {
        Layout::Binary(d) => {
            let files: Vec<PathBuf> = match split {
                Split::Train => (1..=5)
                    .map(|i| d.join(format!("data_batch_{i}.bin")))
                    .collect(),
                Split::Test => vec![d.join("test_batch.bin")],
            };
            let mut out = Dataset {
                classes: binary::class_names(&d),
                ..Dataset::default()
            };
            for f in files {
                let (images, labels) = read_batch(&f, out.classes.len())?;
                out.images.extend(images);
                out.labels.extend(labels);
            }
            Ok(out)
        }
        Layout::Folders(d) => {
            let (this, other) = match split {
                Split::Train => (d.join("train"), d.join("test")),
                Split::Test => (d.join("test"), d.join("train")),
            };
            let data = read_folder(&this)?;
            // A label is the rank of its folder's name, so a class missing
            // from one split shifts every label after it there.
            if other.is_dir() {
                same_classes(&this, &data.classes, &other, &folder::class_names(&other)?)?;
            }
            Ok(data)
        }
    }
}

fn same_classes(a: &Path, a_classes: &[String], b: &Path, b_classes: &[String]) -> Result<()> {
    if a_classes == b_classes {
        return Ok(());
    }
    let lacking = |dir: &Path, has: &[String], other: &[String]| {
        let missing: Vec<&str> = other
            .iter()
            .filter(|c| !has.contains(c))
            .map(String::as_str)
            .collect();
        (!missing.is_empty()).then(|| format!("{} lacks {}", dir.display(), missing.join(", ")))
    };
    let (train, test) = if a.ends_with("train") {
        ((a, a_classes), (b, b_classes))
    } else {
        ((b, b_classes), (a, a_classes))
    };
    let what: Vec<String> = [
        lacking(train.0, train.1, test.1),
        lacking(test.0, test.1, train.1),
    ]
    .into_iter()
    .flatten()
    .collect();
    Err(format!(
        "{} and {} hold different classes: {}. Labels are numbered by sorted folder name, so \
         every class needs a folder in both splits: add the missing ones or remove the extra ones",
        train.0.display(),
        test.0.display(),
        what.join("; ")
    ))
}

/// Refuses data whose class count is not the model's number of scores.
pub fn check_classes(data: &Dataset, classes: usize, dir: &Path) -> Result<()> {
    if data.classes.len() != classes {
        return Err(format!(
            "{}: the data has {} classes, the model outputs {classes} scores",
            dir.display(),
            data.classes.len(),
        ));
    }
    Ok(())
}
