//! BEP 47 attributes on disk: symlinks and executable files of a download.
//!
//! Each link points at a path inside the torrent's folder by a relative target, so that moving
//! the output keeps it right and no link leads outside. Links hold no data, so they are made
//! when the torrent is added; a path that already exists is left alone: it may be the user's,
//! and a download never replaces what it did not write. Executable bits are set once the
//! download is complete, when every file exists (storages create files as data comes).
//! Failures are logged, not fatal: the torrent's data does not depend on them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::metainfo::Metainfo;

/// Gives the files of `meta` under `dir` that the torrent marks executable (`x`) an `x` bit
/// wherever they have an `r` bit. Blocking.
pub fn mark_executables(meta: &Metainfo, dir: &Path) {
    for f in meta.files.iter().filter(|f| f.attr.executable) {
        let at = dir.join(f.relative_path());
        // symlink_metadata: never follow a link the user put there.
        let set = at.symlink_metadata().and_then(|m| {
            if !m.is_file() {
                return Ok(());
            }
            let mode = m.permissions().mode();
            let wanted = mode | ((mode & 0o444) >> 2);
            std::fs::set_permissions(&at, std::fs::Permissions::from_mode(wanted))
        });
        if let Err(e) = set {
            tracing::warn!("cannot mark {} executable: {e}", at.display());
        }
    }
}

/// Creates the links of `meta` under `dir`. Blocking.
pub(crate) fn create_links(meta: &Metainfo, dir: &Path) {
    for link in &meta.symlinks {
        let at = dir.join(crate::metainfo::path::to_path(&link.path));
        if at.symlink_metadata().is_ok() {
            continue;
        }
        let made = at
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::os::unix::fs::symlink(link.relative_target(), &at));
        if let Err(e) = made {
            tracing::warn!("cannot create the symlink {}: {e}", at.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_point_inside_the_torrent_and_existing_paths_are_kept() {
        let info = "d5:filesld6:lengthi3e4:pathl1:d1:aeed4:attr1:l4:pathl1:e1:f1:ge12:symlink pathl2:..1:d1:aeed4:attr1:l4:pathl4:keepe12:symlink pathl1:deee4:name1:t12:piece lengthi4e6:pieces20:xxxxxxxxxxxxxxxxxxxxe";
        let m = Metainfo::from_bytes(format!("d4:info{info}e").as_bytes()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t")).unwrap();
        std::fs::write(dir.path().join("t/keep"), b"mine").unwrap();
        create_links(&m, dir.path());
        let link = dir.path().join("t/e/f/g");
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("../../d/a"));
        assert_eq!(std::fs::read(dir.path().join("t/keep")).unwrap(), b"mine");
    }
}
