//! The storage leaves data it only reads alone: opening, reading and `has_data` create, cut and
//! extend nothing, a range a file does not hold is `Missing`, and read-only data can be seeded.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rivulet_core::plugin::{Storage, StorageError};
use rivulet_storage_mmap::MmapStorage;
use support::{Tmpfs, pattern, spec};

/// Every entry under `dir`, recursively, with its length and modification time.
fn listing(dir: &Path) -> Vec<(String, u64, i64, i64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let m = entry.metadata().unwrap();
        out.push((
            entry.path().display().to_string(),
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
        ));
        if m.is_dir() {
            out.extend(listing(&entry.path()));
        }
    }
    out.sort();
    out
}

#[test]
fn opening_and_reading_absent_files_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let st = MmapStorage::open(&spec(
        dir.path(),
        &[("a/one.bin", 64 << 20), ("a/b/two.bin", 1000), ("empty", 0)],
    ))
    .unwrap();
    let mut buf = vec![0; 1000];
    assert!(matches!(
        st.read(0, 0, &mut buf),
        Err(StorageError::Missing)
    ));
    assert!(matches!(
        st.read(1, 0, &mut buf),
        Err(StorageError::Missing)
    ));
    assert!(!st.has_data(0, 0, 1000));
    assert!(!st.has_data(1, 0, 1000));
    st.flush().unwrap();
    drop(st);
    assert_eq!(listing(dir.path()), vec![], "the storage created files");
}

#[test]
fn a_short_existing_file_is_not_extended_and_its_missing_tail_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let short = pattern(5000, 1);
    let long = pattern(50, 2);
    std::fs::write(dir.path().join("short.bin"), &short).unwrap();
    std::fs::write(dir.path().join("long.bin"), &long).unwrap();
    let before = listing(dir.path());
    let st = MmapStorage::open(&spec(
        dir.path(),
        &[("short.bin", 64 << 20), ("long.bin", 10)],
    ))
    .unwrap();

    let mut head = vec![0; 5000];
    st.read(0, 0, &mut head).unwrap();
    assert_eq!(head, short);
    assert!(st.has_data(0, 0, 5000));
    // A range running past the file's end, and one wholly past it.
    let mut buf = vec![0; 1000];
    assert!(matches!(
        st.read(0, 4500, &mut buf),
        Err(StorageError::Missing)
    ));
    assert!(matches!(
        st.read(0, 1 << 20, &mut buf),
        Err(StorageError::Missing)
    ));
    assert!(!st.has_data(0, 4500, 1000));
    assert!(!st.has_data(0, 1 << 20, 1000));
    let mut ten = [0; 10];
    st.read(1, 0, &mut ten).unwrap();
    assert_eq!(ten, long[..10]);
    st.flush().unwrap();
    drop(st);
    assert_eq!(listing(dir.path()), before, "existing files were changed");
}

#[test]
fn read_only_data_is_read_and_never_written() {
    let Some(fs) = Tmpfs::mount("8m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root); read-only data untested");
        return;
    };
    let data = pattern(300_000, 5);
    std::fs::create_dir(fs.path().join("album")).unwrap();
    std::fs::write(fs.path().join("album/track.flac"), &data).unwrap();
    std::fs::write(fs.path().join("album/cover.jpg"), b"jpeg").unwrap();
    fs.remount_read_only();

    let st = MmapStorage::open(&spec(
        fs.path(),
        &[
            ("album/track.flac", 300_000),
            ("album/empty.txt", 0),
            ("album/cover.jpg", 4),
        ],
    ))
    .unwrap();
    assert!(st.has_data(0, 0, 300_000));
    let mut buf = vec![0; 300_000];
    st.read(0, 0, &mut buf).unwrap();
    assert_eq!(buf, data);
    let mut cover = [0; 4];
    st.read(2, 0, &mut cover).unwrap();
    assert_eq!(&cover, b"jpeg");
    st.flush().unwrap();
    // Writing is what a read-only file system refuses, and cleanly.
    assert!(matches!(
        st.write(0, 0, &data[..10]),
        Err(StorageError::Io { .. })
    ));
}
