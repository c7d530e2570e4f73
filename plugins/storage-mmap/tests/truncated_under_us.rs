//! Another process truncating a file the storage is serving: reads of the lost range fail with
//! `Missing` (the engine treats the piece as missing) instead of a SIGBUS that kills the process.

mod support;

use std::fs::OpenOptions;

use rivulet_core::plugin::{Storage, StorageError};
use rivulet_storage_mmap::MmapStorage;
use support::{pattern, spec};

#[test]
fn a_file_truncated_after_it_was_written_reads_as_missing_and_the_process_lives() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), &[("movie.mkv", 4 << 20), ("next.bin", 100)]);
    let st = MmapStorage::open(&s).unwrap();
    let data = pattern(4 << 20, 9);
    st.write(0, 0, &data).unwrap();
    st.flush().unwrap();
    let mut buf = vec![0; 65536];
    st.read(0, 3 << 20, &mut buf).unwrap();

    // As `truncate -s 1M` would, while the storage holds the file open.
    OpenOptions::new()
        .write(true)
        .open(dir.path().join("movie.mkv"))
        .unwrap()
        .set_len(1 << 20)
        .unwrap();

    assert!(matches!(
        st.read(0, 3 << 20, &mut buf),
        Err(StorageError::Missing)
    ));
    assert!(matches!(
        st.read(0, (1 << 20) - 100, &mut buf),
        Err(StorageError::Missing)
    ));
    assert!(!st.has_data(0, 3 << 20, 65536));
    // What is left still reads.
    st.read(0, 0, &mut buf).unwrap();
    assert_eq!(buf, data[..65536]);
}

#[test]
fn a_file_truncated_and_reopened_reads_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), &[("data.bin", 1 << 20)]);
    {
        let st = MmapStorage::open(&s).unwrap();
        st.write(0, 0, &pattern(1 << 20, 4)).unwrap();
        st.flush().unwrap();
    }
    let st = MmapStorage::open(&s).unwrap();
    let mut buf = vec![0; 16384];
    st.read(0, 1 << 19, &mut buf).unwrap();
    std::fs::write(dir.path().join("data.bin"), b"").unwrap();
    assert!(matches!(
        st.read(0, 1 << 19, &mut buf),
        Err(StorageError::Missing)
    ));
}
