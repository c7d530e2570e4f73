//! A per-test scratch directory for torrents, logs, client profiles and downloads.
//!
//! Removed when the test ends; set `RIVULET_KEEP_TMP=1` to keep it for a post-mortem (its path
//! is printed either way, and panics already carry the relevant log tails).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

pub struct WorkDir {
    dir: Option<TempDir>,
    path: PathBuf,
}

impl WorkDir {
    pub fn new(test: &str) -> WorkDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rivulet-{test}-"))
            .tempdir()
            .expect("create test temp dir");
        // Daemons that drop privileges (opentracker runs as nobody) read files below it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod test temp dir");
        let path = dir.path().to_path_buf();
        eprintln!("[{test}] work dir {}", path.display());
        let keep = std::env::var_os("RIVULET_KEEP_TMP").is_some_and(|v| v == "1");
        WorkDir {
            dir: if keep {
                let _ = dir.keep();
                None
            } else {
                Some(dir)
            },
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new subdirectory (world-readable).
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
        p
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        // A failed removal must not turn a passing test into a panic.
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
    }
}

/// Every file and directory below `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap_or(&p).display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}
