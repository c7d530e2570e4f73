//! Whether code may be loaded from a plugin file or directory, decided from its metadata alone.
//!
//! Loading a library runs its initialisers with all our rights, so the library and the directory
//! it sits in must be changeable only by root or by us: owned by one of them and writable by
//! neither group nor others (as OpenSSH's StrictModes asks of `authorized_keys`). Only the file
//! and its own directory are checked, not every ancestor.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::plugin::error::LoadFailure;

/// Refuses a plugin directory others could write into.
pub fn check_dir(dir: &Path) -> Result<(), LoadFailure> {
    let meta = std::fs::metadata(dir).map_err(LoadFailure::Unreadable)?;
    check(&meta, "directory")
}

/// Refuses a library (given its metadata, taken from the open file) or a directory holding it
/// that others could change.
pub fn check_library(path: &Path, meta: &Metadata) -> Result<(), LoadFailure> {
    check(meta, "file")?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let dir_meta = std::fs::metadata(dir).map_err(LoadFailure::Unreadable)?;
    check(&dir_meta, "its directory")
}

fn check(meta: &Metadata, what: &str) -> Result<(), LoadFailure> {
    let mode = meta.mode();
    let writable = if mode & 0o002 != 0 {
        Some("world-writable")
    } else if mode & 0o020 != 0 {
        Some("group-writable")
    } else {
        None
    };
    if let Some(writable) = writable {
        return Err(LoadFailure::Untrusted(format!(
            "{what} is {writable} (mode {:o})",
            mode & 0o7777
        )));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let owner = meta.uid();
    if owner != 0 && owner != me {
        return Err(LoadFailure::Untrusted(format!(
            "{what} is owned by uid {owner}, neither root nor us (uid {me})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn writable_by_group_or_world_is_refused_and_private_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("p.so");
        std::fs::write(&lib, b"x").unwrap();
        chmod(dir.path(), 0o755);
        chmod(&lib, 0o755);
        let meta = || std::fs::metadata(&lib).unwrap();
        check_library(&lib, &meta()).unwrap();
        check_dir(dir.path()).unwrap();

        chmod(&lib, 0o775);
        let e = check_library(&lib, &meta()).unwrap_err().to_string();
        assert_eq!(
            e,
            "file is group-writable (mode 775): refusing to load code others can change"
        );
        chmod(&lib, 0o757);
        let e = check_library(&lib, &meta()).unwrap_err().to_string();
        assert!(e.starts_with("file is world-writable"), "{e}");

        chmod(&lib, 0o755);
        chmod(dir.path(), 0o777);
        let e = check_library(&lib, &meta()).unwrap_err().to_string();
        assert!(e.starts_with("its directory is world-writable"), "{e}");
        let e = check_dir(dir.path()).unwrap_err().to_string();
        assert!(e.starts_with("directory is world-writable"), "{e}");
        chmod(dir.path(), 0o700);
    }

    #[test]
    fn a_library_owned_by_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("p.so");
        std::fs::write(&lib, b"x").unwrap();
        // Giving a file away needs root (the tests run as root in their namespace); without it
        // the file stays ours and the check below would rightly pass, so say so loudly.
        std::os::unix::fs::chown(&lib, Some(4242), None)
            .expect("chown to another uid (tests run as root)");
        let e = check_library(&lib, &std::fs::metadata(&lib).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("file is owned by uid 4242, neither root nor us"),
            "{e}"
        );
    }
}
