//! BEP 47 symlinks on disk: a download creates each of the torrent's links, pointing at a path
//! inside the torrent's folder by a relative target, so that moving the output keeps them
//! right and no link leads outside it.
//!
//! Links hold no data, so they are made when the torrent is added rather than as pieces come.
//! A path that already exists is left alone: it may be the user's, and a download never
//! replaces what it did not write.

use std::path::Path;

use crate::metainfo::Metainfo;

/// Creates the links of `meta` under `dir`. Blocking; failures are logged, not fatal: the
/// torrent's data does not depend on them.
pub(crate) fn create(meta: &Metainfo, dir: &Path) {
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
        create(&m, dir.path());
        let link = dir.path().join("t/e/f/g");
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("../../d/a"));
        assert_eq!(std::fs::read(dir.path().join("t/keep")).unwrap(), b"mine");
    }
}
