//! Real files in a temporary directory (and a real full tmpfs).

mod support;

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use rivulet_core::plugin::{Storage, StorageError};
use rivulet_storage_mmap::MmapStorage;
use support::{Tmpfs, pattern, spec};

#[test]
fn files_are_created_sparse_at_their_first_write_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        dir.path(),
        &[
            ("c.txt", 1000),
            ("dir/a.bin", 5 << 20),
            ("dir/empty.bin", 0),
            ("dir/sub/b.bin", 300),
        ],
    );
    let st = MmapStorage::open(&s).unwrap();
    assert!(st.persistent());
    let data = pattern(70_000, 7);
    st.write(1, 4_000_000, &data).unwrap();
    // The first write created the empty file.
    assert_eq!(
        std::fs::metadata(dir.path().join("dir/empty.bin"))
            .unwrap()
            .len(),
        0
    );
    let a = dir.path().join("dir/a.bin");
    assert_eq!(std::fs::metadata(&a).unwrap().len(), 5 << 20);
    assert!(
        std::fs::metadata(&a).unwrap().blocks() < 512,
        "a.bin is not sparse"
    );
    st.write(0, 0, &data[..1000]).unwrap();
    let mut buf = vec![0; 70_000];
    st.read(1, 4_000_000, &mut buf).unwrap();
    assert_eq!(buf, data);
    // The unwritten hole of a written file reads as zeros.
    let mut hole = vec![1; 100];
    st.read(1, 0, &mut hole).unwrap();
    assert!(hole.iter().all(|&b| b == 0));
    assert!(!st.has_data(1, 0, 100));
    assert!(st.has_data(1, 4_000_000, 70_000));
    st.read(2, 0, &mut []).unwrap();
    st.flush().unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("c.txt")).unwrap(),
        &data[..1000]
    );
    // The never-written file is not there.
    assert!(!dir.path().join("dir/sub").exists());
}

#[test]
fn out_of_range_spans_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let st = MmapStorage::open(&spec(dir.path(), &[("f", 100), ("e", 0)])).unwrap();
    let mut buf = [0; 10];
    assert!(matches!(
        st.read(0, 95, &mut buf),
        Err(StorageError::OutOfRange { .. })
    ));
    assert!(matches!(
        st.write(0, u64::MAX - 2, &buf),
        Err(StorageError::OutOfRange { .. })
    ));
    assert!(matches!(
        st.write(1, 0, &buf),
        Err(StorageError::OutOfRange { .. })
    ));
    assert!(matches!(
        st.read(2, 0, &mut buf),
        Err(StorageError::OutOfRange { .. })
    ));
    assert!(
        !dir.path().join("f").exists(),
        "a refused write created the file"
    );
}

#[test]
fn reopening_keeps_the_data_written_before() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), &[("keep.bin", 200_000)]);
    let data = pattern(200_000, 3);
    {
        let st = MmapStorage::open(&s).unwrap();
        st.write(0, 0, &data).unwrap();
        st.flush().unwrap();
    }
    let st = MmapStorage::open(&s).unwrap();
    assert!(st.has_data(0, 0, 200_000));
    let mut buf = vec![0; 200_000];
    st.read(0, 0, &mut buf).unwrap();
    assert_eq!(buf, data, "resume lost the data");
}

#[test]
fn refuses_paths_leaving_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("root");
    for bad in ["../escape", "/abs/file", "a/../../escape"] {
        let r = MmapStorage::open(&spec(&inner, &[("ok", 1), (bad, 1)]));
        assert!(matches!(r, Err(StorageError::Other(_))), "{bad} accepted");
    }
    assert!(!dir.path().join("escape").exists());
}

#[test]
fn concurrent_writers_and_readers() {
    let dir = tempfile::tempdir().unwrap();
    let st = Arc::new(MmapStorage::open(&spec(dir.path(), &[("f", 8 << 20)])).unwrap());
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let st = Arc::clone(&st);
            std::thread::spawn(move || {
                let block = pattern(16384, t);
                for k in 0..32u64 {
                    let off = (k * 4 + t as u64) * 16384;
                    st.write(0, off, &block).unwrap();
                    let mut back = vec![0; 16384];
                    st.read(0, off, &mut back).unwrap();
                    assert_eq!(back, block);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    st.flush().unwrap();
}

#[test]
fn full_disk_is_an_error_not_a_crash() {
    let Some(fs) = Tmpfs::mount("1m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root); full-disk path untested");
        return;
    };
    // 4 MiB sparse file on a 1 MiB filesystem: creating it works, filling it must fail cleanly.
    let st = MmapStorage::open(&spec(fs.path(), &[("big.bin", 4 << 20)])).unwrap();
    let block = pattern(65536, 1);
    let mut first_error = None;
    for k in 0..64u64 {
        if let Err(e) = st.write(0, k * 65536, &block) {
            first_error = Some((k, e));
            break;
        }
    }
    let (k, e) = first_error.expect("4 MiB fitted on a 1 MiB tmpfs");
    assert!(matches!(e, StorageError::NoSpace { .. }), "got {e}");
    assert!(k >= 8, "failed after only {k} blocks");
    // What was written before the disk filled is still readable.
    let mut back = vec![0; 65536];
    st.read(0, 0, &mut back).unwrap();
    assert_eq!(back, block);
    st.flush().unwrap();
    drop(st);
}

#[test]
fn what_the_page_cache_holds_is_read_without_waiting_and_nothing_else_is() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), &[("a.bin", 1 << 20), ("b.bin", 1000)]);
    let st = MmapStorage::open(&s).unwrap();
    let data = pattern(200_000, 3);
    // No descriptor yet: opening one may wait for the disk, so it is not tried.
    let mut buf = vec![0; 1000];
    assert!(!st.read_cached(1, 0, &mut buf));
    st.write(0, 100_000, &data).unwrap();
    // Just written, so in the page cache.
    let mut got = vec![0; data.len()];
    assert!(
        st.read_cached(0, 100_000, &mut got),
        "cached bytes not read"
    );
    assert_eq!(got, data);
    // Past the end of the file, and a file never written: not served.
    assert!(!st.read_cached(0, (1 << 20) - 10, &mut buf));
    assert!(!st.read_cached(7, 0, &mut buf));
    assert!(!st.read_cached(1, 0, &mut buf));
}
