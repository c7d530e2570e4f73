//! A torrent of 10,000 files under the usual `ulimit -n 1024`: one descriptor per file would
//! fail with EMFILE; the storage keeps a bounded set open.
//!
//! The test runs itself again as a child process under `prlimit --nofile=1024`, so the limit
//! binds the storage and not the other tests of this binary.

mod support;

use std::path::Path;
use std::process::Command;

use rivulet_core::plugin::{Storage, StorageSpec};
use rivulet_storage_mmap::MmapStorage;
use support::{Tmpfs, pattern};

const FILES: usize = 10_000;
/// Set in the child: the folder to work in.
const CHILD_ROOT: &str = "RIVULET_MANY_FILES_ROOT";

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The soft limit on open files from /proc/self/limits.
fn descriptor_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

fn write_and_read_back_every_file(root: &Path) {
    assert_eq!(descriptor_limit(), 1024, "the child runs without its limit");
    let spec = StorageSpec {
        root: root.to_path_buf(),
        files: (0..FILES)
            .map(|i| {
                (
                    format!("d{:02}/f{i:05}.bin", i % 100).into(),
                    1 + (i as u64 * 7) % 3000,
                )
            })
            .collect(),
        piece_length: 16384,
        memory_limit: 0,
    };
    let st = MmapStorage::open(&spec).unwrap();
    let content = |i: usize, len: u64| pattern(len as usize, i as u8);
    for (i, (_, len)) in spec.files.iter().enumerate() {
        st.write(i, 0, &content(i, *len)).unwrap();
    }
    st.flush().unwrap();
    let peak = open_descriptors();
    for (i, (_, len)) in spec.files.iter().enumerate() {
        assert!(st.has_data(i, 0, *len), "file {i} has no data");
        let mut back = vec![0; *len as usize];
        st.read(i, 0, &mut back).unwrap();
        assert_eq!(back, content(i, *len), "file {i} read back wrong");
    }
    let peak = peak.max(open_descriptors());
    assert!(peak < 200, "{peak} descriptors open");
    eprintln!("{FILES} files written and read back; {peak} descriptors open at most");
}

#[test]
fn ten_thousand_files_are_written_and_read_back_under_a_limit_of_1024_descriptors() {
    if let Some(root) = std::env::var_os(CHILD_ROOT) {
        write_and_read_back_every_file(Path::new(&root));
        return;
    }
    // On a tmpfs when allowed: 10,000 fdatasyncs on a disk are slow and prove nothing here.
    let tmpfs = Tmpfs::mount("256m");
    let dir = tempfile::tempdir().unwrap();
    let root = tmpfs.as_ref().map_or(dir.path(), Tmpfs::path);
    let output = Command::new("prlimit")
        .arg("--nofile=1024:1024")
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ten_thousand_files_are_written_and_read_back_under_a_limit_of_1024_descriptors",
            "--nocapture",
        ])
        .env(CHILD_ROOT, root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    assert!(output.status.success(), "the child failed: {stderr}");
    assert!(
        stderr.contains("files written and read back"),
        "the child ran no test"
    );
}
