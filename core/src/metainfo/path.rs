//! Turns file names from a torrent into relative paths that cannot leave the output directory.
//!
//! A torrent is data from a stranger. A component of `..`, an absolute path, a NUL or a path
//! separator inside a component would let it write anywhere; such torrents are refused, because
//! quietly renaming would also change which bytes land in which file the user asked for.

use std::path::PathBuf;

/// Why a path from the torrent is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("file path is empty")]
    Empty,
    #[error("path component {0:?} would leave the output directory")]
    Traversal(String),
    #[error("path component {0:?} contains a NUL byte")]
    Nul(String),
    #[error("path component {0:?} contains a path separator")]
    Separator(String),
    #[error("path component is too long ({0} bytes, at most 255)")]
    TooLong(usize),
}

/// Decodes one component; invalid UTF-8 is replaced rather than refused, so an old torrent
/// in a legacy encoding still opens (the replacement character keeps it visibly odd).
pub fn component(raw: &[u8]) -> Result<String, PathError> {
    let s = String::from_utf8_lossy(raw).into_owned();
    if s.is_empty() {
        return Err(PathError::Empty);
    }
    if s == ".." || s == "." {
        return Err(PathError::Traversal(s));
    }
    if s.contains('\0') {
        return Err(PathError::Nul(s));
    }
    if s.contains('/') || s.contains('\\') {
        return Err(PathError::Separator(s));
    }
    if s.len() > 255 {
        return Err(PathError::TooLong(s.len()));
    }
    Ok(s)
}

/// Builds a relative path from components. Empty components are dropped (some encoders emit
/// them); a path left with none is refused.
pub fn relative_path(components: &[impl AsRef<[u8]>]) -> Result<Vec<String>, PathError> {
    let mut out = Vec::with_capacity(components.len());
    for c in components {
        let c = c.as_ref();
        if c.is_empty() {
            continue;
        }
        out.push(component(c)?);
    }
    if out.is_empty() {
        return Err(PathError::Empty);
    }
    Ok(out)
}

/// Joins sanitised components into a path.
pub fn to_path(components: &[String]) -> PathBuf {
    components.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escapes() {
        assert!(matches!(
            relative_path(&[b"..".as_slice(), b"x"]),
            Err(PathError::Traversal(_))
        ));
        assert!(matches!(
            relative_path(&[b"/etc/passwd".as_slice()]),
            Err(PathError::Separator(_))
        ));
        assert!(matches!(
            relative_path(&[b"a\0b".as_slice()]),
            Err(PathError::Nul(_))
        ));
        assert!(matches!(
            relative_path(&[b"".as_slice()]),
            Err(PathError::Empty)
        ));
        assert_eq!(
            relative_path(&[b"a".as_slice(), b"", b"b"]).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(
            relative_path(&[b"\xffx".as_slice()]).unwrap(),
            vec!["\u{fffd}x"]
        );
    }
}
