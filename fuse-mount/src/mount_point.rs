//! Checks a directory before mounting on it, naming the fix when it is a dead FUSE mount.

use std::io;
use std::path::{Path, PathBuf};

use crate::MountError;

/// Accepts an existing, empty directory that is not a dead FUSE mount.
pub fn check(dir: &Path) -> Result<(), MountError> {
    let meta = std::fs::metadata(dir).map_err(|e| classify(dir, e))?;
    if !meta.is_dir() {
        return Err(MountError::NotADirectory {
            dir: dir.to_owned(),
        });
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| classify(dir, e))?;
    if entries.next().is_some() {
        return Err(MountError::NotEmpty {
            dir: dir.to_owned(),
        });
    }
    Ok(())
}

/// A FUSE mount whose server died answers every request with ENOTCONN (ECONNABORTED once its
/// connection was aborted through fusectl): say so, with the command that clears it.
fn classify(dir: &Path, source: io::Error) -> MountError {
    let dir: PathBuf = dir.to_owned();
    match source.raw_os_error() {
        Some(libc::ENOTCONN | libc::ECONNABORTED) => MountError::Stale { dir },
        _ => MountError::Inaccessible { dir, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_connection_errors_read_as_a_stale_mount_with_the_fix() {
        let e = classify(
            Path::new("/m"),
            io::Error::from_raw_os_error(libc::ENOTCONN),
        );
        assert!(matches!(e, MountError::Stale { .. }));
        let msg = e.to_string();
        assert!(msg.contains("fusermount3 -u /m"), "{msg}");
        assert!(msg.contains("umount -l /m"), "{msg}");
        assert!(!msg.contains('\n'));
        let e = classify(Path::new("/m"), io::Error::from_raw_os_error(libc::ENOENT));
        assert!(matches!(e, MountError::Inaccessible { .. }));
    }

    #[test]
    fn refuses_files_and_non_empty_folders() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(check(tmp.path()).is_ok());
        let file = tmp.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            check(&file),
            Err(MountError::NotADirectory { .. })
        ));
        assert!(matches!(
            check(tmp.path()),
            Err(MountError::NotEmpty { .. })
        ));
        assert!(matches!(
            check(&tmp.path().join("missing")),
            Err(MountError::Inaccessible { .. })
        ));
    }
}
