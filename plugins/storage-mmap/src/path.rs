//! Refusing file paths that could leave the storage root.
//!
//! Metainfo parsing sanitises paths already; this is the second line of defence at the point
//! where files are created.

use std::path::{Component, Path};

use rivulet_core::plugin::StorageError;

/// Accepts only a non-empty path made of plain names (and `.`), so `root.join(path)` stays
/// under `root`.
pub(crate) fn check_relative(path: &Path) -> Result<(), StorageError> {
    let mut names = 0;
    for component in path.components() {
        match component {
            Component::Normal(_) => names += 1,
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(StorageError::Other(format!(
                    "refusing file path {} outside the storage root",
                    path.display()
                )));
            }
        }
    }
    if names == 0 {
        return Err(StorageError::Other(format!(
            "refusing empty file path {:?}",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_names_pass() {
        assert!(check_relative(Path::new("a/b.bin")).is_ok());
        assert!(check_relative(Path::new("./a")).is_ok());
        assert!(check_relative(Path::new("/etc/passwd")).is_err());
        assert!(check_relative(Path::new("a/../../b")).is_err());
        assert!(check_relative(Path::new("..")).is_err());
        assert!(check_relative(Path::new("")).is_err());
        assert!(check_relative(Path::new(".")).is_err());
    }
}
