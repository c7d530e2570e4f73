//! The file list of a torrent: read from the v1 `files` list (or the single `length`), with
//! BEP 47 attributes, then placed in the torrent's byte space under safe, unique names.
//!
//! Pad files (attribute `p`) take bytes of the byte space but are no file at all: they are left
//! out of [`Metainfo::files`](super::Metainfo), so no storage creates them and no mount shows
//! them; the gap they leave reads as zeros. Symlinks (attribute `l`) take no bytes (as in
//! libtorrent) and are kept apart, with a target that is a path inside the torrent.

use super::merkle::Hash;
use super::path;
use super::unique::make_unique;
use super::value::Value;
use super::{FileAttr, FileEntry, MetainfoError, Symlink};

/// One entry of a file list as the torrent spells it.
#[derive(Debug)]
pub(super) struct Entry<'a> {
    /// Path below the torrent's folder (empty for a single-file torrent).
    pub comps: Vec<&'a [u8]>,
    pub length: u64,
    pub pad: bool,
    pub attr: FileAttr,
    pub symlink: Option<Vec<&'a [u8]>>,
    /// BEP 52 merkle root of the file's data.
    pub root: Option<Hash>,
}

/// The BEP 47 attribute letters that matter here.
pub(super) struct Attr {
    pub pad: bool,
    pub symlink: bool,
    pub file: FileAttr,
}

pub(super) fn attr(v: Option<Value>) -> Attr {
    // Unknown letters are for attributes this client does not know: ignored, as BEP 47 says.
    let a = v.and_then(|v| v.bytes()).unwrap_or_default();
    Attr {
        pad: a.contains(&b'p'),
        symlink: a.contains(&b'l'),
        file: FileAttr {
            executable: a.contains(&b'x'),
            hidden: a.contains(&b'h'),
        },
    }
}

/// A list of strings, or `None` if `v` is anything else.
pub(super) fn strings(v: Value<'_>) -> Option<Vec<&[u8]>> {
    v.list()?.map(|c| c.bytes()).collect()
}

/// A length field: present, an integer and not negative.
pub(super) fn length(v: Option<Value>, what: &str) -> Result<u64, MetainfoError> {
    v.and_then(|v| v.int())
        .and_then(|l| u64::try_from(l).ok())
        .ok_or_else(|| MetainfoError::FileLength(what.to_string()))
}

/// The v1 file list of `info`, or `None` if it has neither `files` nor `length`.
pub(super) fn v1_entries<'a>(info: Value<'a>) -> Result<Option<Vec<Entry<'a>>>, MetainfoError> {
    let Some(files) = info.get("files") else {
        let Some(len) = info.get("length") else {
            return Ok(None);
        };
        let a = attr(info.get("attr"));
        return Ok(Some(vec![Entry {
            comps: Vec::new(),
            length: length(Some(len), "the file")?,
            pad: false,
            attr: a.file,
            symlink: None,
            root: None,
        }]));
    };
    let list = files.list().ok_or(MetainfoError::BadField("files"))?;
    let mut out = Vec::new();
    for f in list {
        if f.dict().is_none() {
            return Err(MetainfoError::BadField("files"));
        }
        let mut a = attr(f.get("attr"));
        let comps = f
            .get("path.utf-8")
            .and_then(strings)
            .or_else(|| f.get("path").and_then(strings));
        // BitComet marked its pad files by name before BEP 47 gave them an attribute.
        if comps
            .as_ref()
            .and_then(|c| c.last())
            .is_some_and(|n| n.starts_with(b"_____padding_file_"))
        {
            a.pad = true;
        }
        let comps = match comps {
            Some(c) if !c.is_empty() => c,
            // A pad file needs no name: it is never stored.
            _ if a.pad => Vec::new(),
            _ => return Err(MetainfoError::BadField("path")),
        };
        let symlink = if a.symlink {
            let target = f.get("symlink path").and_then(strings);
            Some(target.ok_or(MetainfoError::BadField("symlink path"))?)
        } else {
            None
        };
        let shown = path::original(comps.iter().copied());
        let length = match symlink {
            Some(_) => 0,
            None => length(f.get("length"), &shown)?,
        };
        out.push(Entry {
            comps,
            length,
            pad: a.pad,
            attr: a.file,
            symlink,
            root: None,
        });
    }
    Ok(Some(out))
}

/// What [`place`] makes of a file list.
pub(super) struct Placed {
    pub files: Vec<FileEntry>,
    pub symlinks: Vec<Symlink>,
    pub total_length: u64,
}

/// Gives each entry its offset and a safe, unique path. With `align`, every file with data
/// starts on a piece boundary (BEP 52 places v2 files so, without pad entries).
pub(super) fn place(
    name: &str,
    multi_file: bool,
    entries: &[Entry],
    piece_length: u64,
    align: bool,
) -> Result<Placed, MetainfoError> {
    let full = |e: &Entry| -> (Vec<String>, String) {
        if !multi_file {
            // v1 names a single file by `name`; v2 by its key in the file tree.
            if e.comps.is_empty() {
                return (vec![name.to_string()], name.to_string());
            }
            let raw = path::original(e.comps.iter().copied());
            return (path::relative_path(e.comps.iter().copied()), raw);
        }
        let mut p = vec![name.to_string()];
        p.extend(path::relative_path(e.comps.iter().copied()));
        (p, path::original(e.comps.iter().copied()))
    };
    let mut files = Vec::new();
    let mut symlinks = Vec::new();
    let mut offset = 0u64;
    for e in entries {
        if e.pad {
            offset = offset
                .checked_add(e.length)
                .ok_or(MetainfoError::TotalLength)?;
            continue;
        }
        let (p, raw) = full(e);
        let shown = if multi_file { &p[1..] } else { &p[..] };
        let original = (shown.join("/") != raw).then_some(raw);
        if let Some(target) = &e.symlink {
            let mut t = vec![name.to_string()];
            t.extend(path::relative_path(target.iter().copied()));
            symlinks.push(Symlink {
                path: p,
                target: t,
                original,
            });
            continue;
        }
        if align && e.length > 0 {
            offset = offset
                .checked_next_multiple_of(piece_length)
                .ok_or(MetainfoError::TotalLength)?;
        }
        files.push(FileEntry {
            path: p,
            length: e.length,
            offset,
            attr: e.attr,
            original,
            pieces_root: e.root,
        });
        offset = offset
            .checked_add(e.length)
            .ok_or(MetainfoError::TotalLength)?;
    }
    // A tail pad counts: a v1 torrent's last piece covers it.
    let total_length = offset;
    rename_duplicates(&mut files, &mut symlinks)?;
    Ok(Placed {
        files,
        symlinks,
        total_length,
    })
}

fn rename_duplicates(
    files: &mut [FileEntry],
    symlinks: &mut [Symlink],
) -> Result<(), MetainfoError> {
    let mut paths: Vec<Vec<String>> = files
        .iter()
        .map(|f| f.path.clone())
        .chain(symlinks.iter().map(|s| s.path.clone()))
        .collect();
    let renamed = make_unique(&mut paths)?;
    for i in renamed {
        let (path, original) = match files.get_mut(i) {
            Some(f) => (&mut f.path, &mut f.original),
            None => {
                let s = &mut symlinks[i - files.len()];
                (&mut s.path, &mut s.original)
            }
        };
        // Only a multi-file torrent has two files, so the first component is its folder.
        if original.is_none() {
            *original = Some(path[1..].join("/"));
        }
        *path = std::mem::take(&mut paths[i]);
    }
    Ok(())
}
