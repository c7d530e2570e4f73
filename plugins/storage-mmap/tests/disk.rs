//! Real files in a temporary directory (and a real full tmpfs).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rivulet_core::plugin::{Storage, StorageError, StorageSpec};
use rivulet_storage_mmap::MmapStorage;

fn spec(root: &Path, files: &[(&str, u64)]) -> StorageSpec {
    StorageSpec {
        root: root.to_path_buf(),
        files: files.iter().map(|&(p, l)| (PathBuf::from(p), l)).collect(),
        piece_length: 65536,
        memory_limit: 0,
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn creates_sparse_files_with_folders_and_reads_back_writes() {
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
    let a = dir.path().join("dir/a.bin");
    assert_eq!(std::fs::metadata(&a).unwrap().len(), 5 << 20);
    assert!(
        std::fs::metadata(&a).unwrap().blocks() < 64,
        "a.bin is not sparse"
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("dir/empty.bin"))
            .unwrap()
            .len(),
        0
    );

    let data = pattern(70_000, 7);
    st.write(1, 4_000_000, &data).unwrap();
    st.write(0, 0, &data[..1000]).unwrap();
    let mut buf = vec![0; 70_000];
    st.read(1, 4_000_000, &mut buf).unwrap();
    assert_eq!(buf, data);
    // The unwritten hole reads as zeros.
    let mut hole = vec![1; 100];
    st.read(1, 0, &mut hole).unwrap();
    assert!(hole.iter().all(|&b| b == 0));
    st.read(2, 0, &mut []).unwrap();
    st.flush().unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("c.txt")).unwrap(),
        &data[..1000]
    );
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
    assert_eq!(std::fs::metadata(dir.path().join("f")).unwrap().len(), 100);
}

#[test]
fn reopening_keeps_data_and_fixes_wrong_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        dir.path(),
        &[("keep.bin", 200_000), ("short.bin", 5000), ("long.bin", 10)],
    );
    std::fs::write(dir.path().join("short.bin"), b"abc").unwrap();
    std::fs::write(dir.path().join("long.bin"), vec![9u8; 50]).unwrap();
    let data = pattern(200_000, 3);
    {
        let st = MmapStorage::open(&s).unwrap();
        st.write(0, 0, &data).unwrap();
        st.flush().unwrap();
    }
    assert_eq!(
        std::fs::metadata(dir.path().join("short.bin"))
            .unwrap()
            .len(),
        5000
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("long.bin"))
            .unwrap()
            .len(),
        10
    );
    let st = MmapStorage::open(&s).unwrap();
    let mut buf = vec![0; 200_000];
    st.read(0, 0, &mut buf).unwrap();
    assert_eq!(buf, data, "resume lost the data");
    let mut head = [0; 4];
    st.read(1, 0, &mut head).unwrap();
    assert_eq!(&head, b"abc\0");
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

/// A tmpfs of 1 MiB that is unmounted again on drop.
struct SmallTmpfs {
    dir: tempfile::TempDir,
}

impl SmallTmpfs {
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .status()
            .ok()?;
        status.success().then_some(SmallTmpfs { dir })
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn full_disk_is_an_error_not_a_crash() {
    let Some(fs) = SmallTmpfs::mount() else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root); full-disk path untested");
        return;
    };
    // 4 MiB sparse file on a 1 MiB filesystem: creating it works, filling it must fail cleanly.
    let st = MmapStorage::open(&spec(fs.dir.path(), &[("big.bin", 4 << 20)])).unwrap();
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
