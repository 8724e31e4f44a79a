//! `netc data cifar10 DIR`: fetch the official binary archive (or take a
//! local copy), check it, and unpack it where training looks for it.

use md5::{Digest, Md5};
use std::io::Read;
use std::path::{Path, PathBuf};

pub const URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
pub const ARCHIVE: &str = "cifar-10-binary.tar.gz";
pub const MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";

pub fn md5_hex(path: &Path) -> Result<String, String> {
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Downloads `url` to `dest` through a temporary file.
fn download(url: &str, dest: &Path) -> Result<(), String> {
    crate::diag::note(format_args!("downloading {url}"));
    let response = ureq::get(url).call().map_err(|e| {
        format!("cannot download {url}: {e}. Without internet, download {ARCHIVE} elsewhere and pass it with --from")
    })?;
    let tmp = dest.with_extension("part");
    let mut out =
        std::fs::File::create(&tmp).map_err(|e| format!("{}: cannot write: {e}", tmp.display()))?;
    std::io::copy(&mut response.into_reader(), &mut out)
        .map_err(|e| format!("{url}: download broke off: {e}"))?;
    std::fs::rename(&tmp, dest).map_err(|e| format!("{}: cannot write: {e}", dest.display()))
}

/// Unpacks a .tar.gz into `dir`.
pub fn unpack(archive: &Path, dir: &Path) -> Result<(), String> {
    let file = std::fs::File::open(archive)
        .map_err(|e| format!("{}: cannot read: {e}", archive.display()))?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(dir)
        .map_err(|e| format!("{}: not a readable .tar.gz archive: {e}", archive.display()))
}

/// Gets CIFAR-10 into `dir`: from `from` (a local archive) or by download.
/// The official archive is checked against its published MD5.
pub fn cifar10(dir: &Path, from: Option<&Path>) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    let archive = match from {
        Some(path) => path.to_path_buf(),
        None => {
            let dest = dir.join(ARCHIVE);
            if !dest.exists() {
                download(URL, &dest)?;
            }
            dest
        }
    };
    let official = archive.file_name().is_some_and(|n| n == ARCHIVE);
    if official {
        let sum = md5_hex(&archive)?;
        if sum != MD5 {
            return Err(format!(
                "{}: MD5 is {sum}, the official archive's is {MD5}: the file is damaged or incomplete; delete it and fetch it again",
                archive.display()
            ));
        }
        crate::diag::note(format_args!("{}: MD5 {sum} matches", archive.display()));
    } else {
        crate::diag::note(format_args!(
            "{}: not the official {ARCHIVE}, unpacking without a checksum",
            archive.display()
        ));
    }
    unpack(&archive, dir)?;
    Ok(dir.to_path_buf())
}
