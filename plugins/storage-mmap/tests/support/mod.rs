//! What the storage tests share: specs, recognisable data, a small tmpfs of their own.

#![allow(dead_code)] // Each test file uses its own part.

use std::path::{Path, PathBuf};

use rivulet_core::plugin::StorageSpec;

pub fn spec(root: &Path, files: &[(&str, u64)]) -> StorageSpec {
    StorageSpec {
        root: root.to_path_buf(),
        files: files.iter().map(|&(p, l)| (PathBuf::from(p), l)).collect(),
        piece_length: 65536,
        memory_limit: 0,
    }
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// A tmpfs mounted for one test, unmounted again on drop.
pub struct Tmpfs {
    pub dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` where mounting is not allowed (not root).
    pub fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .ok()?;
        status.success().then_some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Makes the whole file system read-only, which binds root too (unlike `chmod a-w`).
    pub fn remount_read_only(&self) {
        let status = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "remounting read-only failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}
