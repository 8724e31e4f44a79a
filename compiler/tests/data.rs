//! `netc data cifar10`: local archives unpack; a damaged official archive is refused.

use std::path::Path;
use std::process::Command;

fn archive(path: &Path, files: &[(&str, &[u8])]) {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, *bytes).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

/// `netc data cifar10 DEST --from SRC`
fn unpack(dest: &Path, src: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["data", "cifar10"])
        .arg(dest)
        .arg("--from")
        .arg(src)
        .output()
        .unwrap()
}

#[test]
fn a_local_archive_is_unpacked() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("mine.tar.gz");
    archive(
        &src,
        &[("cifar-10-batches-bin/test_batch.bin", &[0u8; 3073])],
    );
    let out_dir = dir.path().join("data");
    let out = unpack(&out_dir, &src);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(out_dir.join("cifar-10-batches-bin/test_batch.bin"))
            .unwrap()
            .len(),
        3073
    );
}

#[test]
fn a_damaged_official_archive_fails_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("cifar-10-binary.tar.gz");
    archive(&src, &[("cifar-10-batches-bin/test_batch.bin", &[1u8; 10])]);
    let out = unpack(&dir.path().join("d"), &src);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MD5") && err.contains("cifar-10-binary.tar.gz"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_no_archive_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("notes.tar.gz");
    std::fs::write(&src, b"plain text").unwrap();
    let out = unpack(&dir.path().join("d"), &src);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("notes.tar.gz"));
}
