//! Turns file names from a torrent into relative paths that cannot leave the output directory
//! and that every Linux file system takes.
//!
//! A torrent is data from a stranger, but refusing an odd name also refuses a torrent that the
//! reference clients open (libtorrent cleans names up and loads it), so names are made safe
//! instead: `.` and `..` components are dropped, a separator or NUL inside a component becomes
//! `_`, an empty component becomes `_`, and a component over 255 bytes (the limit of ext4,
//! btrfs, xfs and FUSE) is shortened keeping its extension. What is left is a list of plain
//! names, so joining it under the output directory cannot lead outside it.

use std::path::PathBuf;

/// Longest component the kernel takes (NAME_MAX).
pub const NAME_MAX: usize = 255;
/// A shortened component is cut to this, leaving room for a `.N` that tells duplicates apart.
const SHORTENED: usize = 240;
/// Longest extension kept when shortening; a longer "extension" is just part of the name.
const MAX_EXTENSION: usize = 16;

/// One component made safe, or `None` if it must be dropped (`.` and `..`).
pub fn component(raw: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(raw);
    if s == "." || s == ".." {
        return None;
    }
    if s.is_empty() {
        return Some("_".to_string());
    }
    // A run of separators becomes one `_`, as in libtorrent (`//` is one `_`).
    let mut out = String::with_capacity(s.len());
    let mut after_separator = false;
    for c in s.chars() {
        let separator = matches!(c, '/' | '\\' | '\0');
        if !separator {
            out.push(c);
        } else if !after_separator {
            out.push('_');
        }
        after_separator = separator;
    }
    Some(shorten(out))
}

/// `name` cut to fit [`NAME_MAX`], keeping a short extension.
fn shorten(name: String) -> String {
    if name.len() <= NAME_MAX {
        return name;
    }
    let ext = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= MAX_EXTENSION => &name[dot..],
        _ => "",
    };
    let mut cut = SHORTENED - ext.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ext}", &name[..cut])
}

/// A relative path from components made safe; never empty.
pub fn relative_path<'a>(components: impl IntoIterator<Item = &'a [u8]>) -> Vec<String> {
    let out: Vec<String> = components.into_iter().filter_map(component).collect();
    if out.is_empty() {
        return vec!["_".to_string()];
    }
    out
}

/// The components as the torrent spells them, for showing what was changed.
pub fn original<'a>(components: impl IntoIterator<Item = &'a [u8]>) -> String {
    components
        .into_iter()
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join("/")
}

/// Joins sanitised components into a path.
pub fn to_path(components: &[String]) -> PathBuf {
    components.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(c: &[&[u8]]) -> Vec<String> {
        relative_path(c.iter().copied())
    }

    #[test]
    fn escapes_are_made_plain_names() {
        assert_eq!(p(&[b"..", b"x"]), vec!["x"]);
        assert_eq!(p(&[b"/etc/passwd"]), vec!["_etc_passwd"]);
        assert_eq!(p(&[b"..\\..\\evil"]), vec![".._.._evil"]);
        assert_eq!(p(&[b"a\0b"]), vec!["a_b"]);
        assert_eq!(p(&[b"//", b"a\\/b"]), vec!["_", "a_b"]);
        assert_eq!(p(&[b""]), vec!["_"]);
        assert_eq!(p(&[b".", b".."]), vec!["_"]);
        assert_eq!(p(&[b"a", b"", b"b"]), vec!["a", "_", "b"]);
        assert_eq!(p(&[b"\xffx"]), vec!["\u{fffd}x"]);
    }

    #[test]
    fn long_names_are_shortened_keeping_the_extension() {
        let long = format!("{}.mkv", "é".repeat(200));
        let got = component(long.as_bytes()).unwrap();
        assert!(got.len() <= SHORTENED && got.ends_with("é.mkv"), "{got}");
        let no_ext = "x".repeat(300);
        assert_eq!(component(no_ext.as_bytes()).unwrap().len(), SHORTENED);
        let exact = "y".repeat(NAME_MAX);
        assert_eq!(component(exact.as_bytes()).unwrap(), exact);
    }
}
