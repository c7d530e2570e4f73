//! What is on disk at start-up: which pieces the resume file may still vouch for, and which must
//! be hashed again before anything is served or reported.
//!
//! The resume file is not trusted over the disk. It records each data file's size and
//! modification and change times (ns) as they were after the flush that made its pieces
//! durable; a file whose stamp differs now (truncated, emptied, edited, replaced, deleted) loses
//! the resume file's word for every piece that touches it, and those pieces are hashed like any
//! other piece with data the resume file does not name (the file lags behind a crash).
//! The change time is kept because `touch -r` can restore a modification time but not it.

use std::path::{Path, PathBuf};

use super::assembly::MAX_HELD_PIECE;
use super::file_stamp::{FileStamp, stamp_files};
use super::resume::{self, Saved};
use crate::bitfield::Bitfield;
use crate::layout::Layout;
use crate::metainfo::Metainfo;
use crate::plugin::{Storage, StorageError};

/// Files named in full in an error or event; the rest are counted.
const NAMED_FILES: usize = 5;

/// What the start-up check found.
#[derive(Debug)]
pub(crate) struct Recheck {
    pub have: Bitfield,
    /// Files changed since the resume file vouched for them, in torrent order.
    pub changed_files: Vec<usize>,
    /// Pieces hashed because the resume file did not vouch for them, and how many verified.
    pub hashed: u32,
    pub verified: u32,
    /// The pieces hashed and found right here (no need to hash them again when served).
    pub verified_pieces: Bitfield,
}

/// Pieces the resume file still vouches for, and the files it no longer vouches for. Pure: the
/// engine's start-up check and the tests share it.
pub(crate) fn vouched(
    layout: &Layout,
    saved: Option<Saved>,
    now: &[Option<FileStamp>],
) -> (Bitfield, Vec<usize>) {
    let n = layout.piece_count();
    let Some(saved) = saved else {
        return (Bitfield::new(n), Vec::new());
    };
    let changed: Vec<usize> = (0..now.len())
        .filter(|&i| saved.stamps.get(i) != now.get(i))
        .collect();
    let mut have = saved.pieces;
    for &file in &changed {
        let range = layout.file_range(file);
        if range.is_empty() {
            continue;
        }
        for p in layout.pieces_for(range) {
            have.clear(p);
        }
    }
    (have, changed)
}

/// The pieces complete at start-up: those the resume file vouches for (its files unchanged),
/// plus any other piece whose data hashes right. Blocking: reads and hashes.
pub(crate) fn initial_have(
    meta: &Metainfo,
    layout: &Layout,
    storage: &dyn Storage,
    resume: Option<&Path>,
    data_dir: &Path,
) -> Recheck {
    let n = meta.piece_count();
    let Some(resume) = resume else {
        return Recheck {
            have: Bitfield::new(n),
            changed_files: Vec::new(),
            hashed: 0,
            verified: 0,
            verified_pieces: Bitfield::new(n),
        };
    };
    let saved = resume::load(resume, meta);
    let (mut have, changed_files) = vouched(layout, saved, &stamp_files(data_dir, meta));
    let (mut hashed, mut verified) = (0, 0);
    let mut verified_pieces = Bitfield::new(n);
    for p in 0..n {
        if have.get(p) {
            continue;
        }
        let range = layout.piece_range(p);
        // A piece with a never-written span cannot be complete: skip reading and hashing it.
        if !layout
            .spans(range.clone())
            .iter()
            .all(|s| storage.has_data(s.file, s.offset, s.len))
        {
            continue;
        }
        hashed += 1;
        if let Ok(true) = stored_piece_matches(meta, layout, storage, p) {
            have.set(p);
            verified_pieces.set(p);
            verified += 1;
        }
    }
    Recheck {
        have,
        changed_files,
        hashed,
        verified,
        verified_pieces,
    }
}

/// Bytes of a stored piece read at once to hash it.
const HASH_CHUNK: u64 = 1 << 20;

/// Whether the storage holds piece `p` as the torrent describes it. A piece longer than
/// [`MAX_HELD_PIECE`] is read and hashed a chunk at a time, never held whole.
pub(crate) fn stored_piece_matches(
    meta: &Metainfo,
    layout: &Layout,
    storage: &dyn Storage,
    p: u32,
) -> Result<bool, StorageError> {
    let piece = layout.piece_range(p);
    if piece.end - piece.start <= MAX_HELD_PIECE {
        return Ok(meta.piece_matches(p, &read_range(layout, storage, piece)?));
    }
    let mut hasher = meta.piece_hasher(p);
    let mut at = piece.start;
    while at < piece.end {
        let end = (at + HASH_CHUNK).min(piece.end);
        hasher.update(&read_range(layout, storage, at..end)?);
        at = end;
    }
    Ok(hasher.matches())
}

/// Reads a torrent-global byte range from the storage, file by file.
pub(crate) fn read_range(
    layout: &Layout,
    storage: &dyn Storage,
    range: std::ops::Range<u64>,
) -> Result<Vec<u8>, StorageError> {
    fill(layout, range, |file, offset, buf| {
        storage.read(file, offset, buf)
    })
}

/// `range` if the storage holds all of it in memory (see [`Storage::read_cached`]); safe to
/// call on an async thread.
pub(crate) fn read_range_cached(
    layout: &Layout,
    storage: &dyn Storage,
    range: std::ops::Range<u64>,
) -> Option<Vec<u8>> {
    fill(layout, range, |file, offset, buf| {
        storage
            .read_cached(file, offset, buf)
            .then_some(())
            .ok_or(())
    })
    .ok()
}

/// `range` read span by span (a span lies in one file) with `read`.
fn fill<E>(
    layout: &Layout,
    range: std::ops::Range<u64>,
    mut read: impl FnMut(usize, u64, &mut [u8]) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let mut buf = vec![0u8; (range.end - range.start) as usize];
    for span in layout.spans(range) {
        let at = span.range_offset as usize;
        read(span.file, span.offset, &mut buf[at..at + span.len as usize])?;
    }
    Ok(buf)
}

/// The relative paths of `files`, escaped for a terminal: the first few, then a count.
pub(crate) fn name_files(meta: &Metainfo, files: &[usize]) -> String {
    let mut names: Vec<String> = files
        .iter()
        .take(NAMED_FILES)
        .map(|&f| escaped(&meta.files[f].relative_path()))
        .collect();
    if files.len() > NAMED_FILES {
        names.push(format!("and {} more", files.len() - NAMED_FILES));
    }
    names.join(", ")
}

fn escaped(p: &Path) -> String {
    p.display().to_string().escape_debug().to_string()
}

/// Files touched by a piece that is not in `have`, in torrent order.
pub(crate) fn files_missing_pieces(layout: &Layout, have: &Bitfield) -> Vec<usize> {
    let mut touched: Vec<bool> = Vec::new();
    for p in (0..have.len()).filter(|&p| !have.get(p)) {
        for span in layout.spans(layout.piece_range(p)) {
            if touched.len() <= span.file {
                touched.resize(span.file + 1, false);
            }
            touched[span.file] = true;
        }
    }
    (0..touched.len()).filter(|&f| touched[f]).collect()
}

/// Data that cannot be served as it is.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "{count} of {total} files in {} are absent or of the wrong size: {list}",
        dir.display()
    )]
    WrongFiles {
        dir: PathBuf,
        count: usize,
        total: usize,
        list: String,
    },
    #[error("{bad} of {total} pieces are absent or do not verify, in {files}")]
    BadPieces { bad: u32, total: u32, files: String },
}

/// Checks, without opening or changing anything, that every file of the torrent that holds
/// data is under `data_dir` at its length.
pub fn check_files_present(meta: &Metainfo, data_dir: &Path) -> Result<(), DataError> {
    let wrong: Vec<(usize, Option<u64>)> = meta
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.length > 0)
        .filter_map(|(i, f)| {
            let found = std::fs::metadata(data_dir.join(f.relative_path()))
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            (found != Some(f.length)).then_some((i, found))
        })
        .collect();
    if wrong.is_empty() {
        return Ok(());
    }
    let mut list: Vec<String> = wrong
        .iter()
        .take(NAMED_FILES)
        .map(|&(i, found)| {
            let f = &meta.files[i];
            let name = escaped(&f.relative_path());
            match found {
                None => format!("{name} (absent)"),
                Some(len) => format!("{name} ({len} bytes, not {})", f.length),
            }
        })
        .collect();
    if wrong.len() > NAMED_FILES {
        list.push(format!("and {} more", wrong.len() - NAMED_FILES));
    }
    Err(DataError::WrongFiles {
        dir: data_dir.to_owned(),
        count: wrong.len(),
        total: meta.files.len(),
        list: list.join(", "),
    })
}

/// The error for a start-up check that left pieces missing when all were required.
pub(crate) fn incomplete(meta: &Metainfo, layout: &Layout, have: &Bitfield) -> DataError {
    DataError::BadPieces {
        bad: have.len() - have.count(),
        total: have.len(),
        files: name_files(meta, &files_missing_pieces(layout, have)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two files of 6 and 10 bytes in pieces of 4: piece 1 straddles both.
    fn layout() -> (Metainfo, Layout) {
        let t = format!(
            "d4:infod5:filesld6:lengthi6e4:pathl1:aeed6:lengthi10e4:pathl1:beee\
             4:name1:d12:piece lengthi4e6:pieces80:{}ee",
            "x".repeat(80)
        );
        let meta = Metainfo::from_bytes(t.as_bytes()).unwrap();
        let layout = Layout::new(&meta);
        (meta, layout)
    }

    fn stamp(len: u64, mtime_ns: i64) -> Option<FileStamp> {
        Some(FileStamp {
            len,
            mtime_ns,
            ctime_ns: mtime_ns,
        })
    }

    fn saved(now: &[Option<FileStamp>]) -> Saved {
        Saved {
            pieces: Bitfield::full(4),
            stamps: now.to_vec(),
        }
    }

    #[test]
    fn unchanged_files_keep_every_piece_the_resume_file_names() {
        let (_, layout) = layout();
        let now = [stamp(6, 1), stamp(10, 2)];
        let (have, changed) = vouched(&layout, Some(saved(&now)), &now);
        assert!(have.is_full());
        assert!(changed.is_empty());
    }

    #[test]
    fn a_changed_file_loses_every_piece_touching_it_including_shared_ones() {
        let (_, layout) = layout();
        let before = [stamp(6, 1), stamp(10, 2)];
        for now in [
            [stamp(6, 1), stamp(3, 2)],  // truncated
            [stamp(6, 1), stamp(10, 9)], // same size, written again
            [stamp(6, 1), None],         // deleted
        ] {
            let (have, changed) = vouched(&layout, Some(saved(&before)), &now);
            assert_eq!(changed, vec![1]);
            assert_eq!(have.ones().collect::<Vec<_>>(), vec![0], "{now:?}");
        }
        let now = [stamp(6, 5), stamp(10, 2)];
        let (have, _) = vouched(&layout, Some(saved(&before)), &now);
        assert_eq!(have.ones().collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn a_change_time_alone_is_a_change() {
        let (_, layout) = layout();
        let before = [stamp(6, 1), stamp(10, 2)];
        let mut now = before;
        now[0] = Some(FileStamp {
            len: 6,
            mtime_ns: 1,
            ctime_ns: 7,
        });
        let (have, changed) = vouched(&layout, Some(saved(&before)), &now);
        assert_eq!(changed, vec![0]);
        assert_eq!(have.ones().collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn without_a_resume_file_nothing_is_vouched_for() {
        let (_, layout) = layout();
        let (have, changed) = vouched(&layout, None, &[stamp(6, 1), stamp(10, 2)]);
        assert_eq!(have.count(), 0);
        assert!(changed.is_empty());
    }

    #[test]
    fn stamps_read_from_disk_notice_truncation_and_rewrites() {
        let (meta, _) = layout();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/a"), b"123456").unwrap();
        let before = stamp_files(dir.path(), &meta);
        assert_eq!(before[1], None);
        assert_eq!(before[0].unwrap().len, 6);
        assert_eq!(stamp_files(dir.path(), &meta), before);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("d/a"))
            .unwrap();
        f.set_len(5).unwrap();
        assert_ne!(stamp_files(dir.path(), &meta), before);
    }

    /// Byte `i` of file `f` is `f * 100 + i`; only the files in `cached` answer `read_cached`.
    struct InMemory {
        cached: Vec<usize>,
    }

    impl Storage for InMemory {
        fn write(&self, _: usize, _: u64, _: &[u8]) -> Result<(), StorageError> {
            unreachable!("nothing is written")
        }
        fn read(&self, _: usize, _: u64, _: &mut [u8]) -> Result<(), StorageError> {
            unreachable!("only cached reads are made")
        }
        fn read_cached(&self, file: usize, offset: u64, buf: &mut [u8]) -> bool {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (file as u64 * 100 + offset + i as u64) as u8;
            }
            self.cached.contains(&file)
        }
        fn flush(&self) -> Result<(), StorageError> {
            Ok(())
        }
        fn persistent(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_range_is_read_from_memory_only_if_every_file_under_it_is() {
        let (_, layout) = layout();
        // Piece 1 is bytes 4..8: the last two of `a`, the first two of `b`.
        let both = InMemory { cached: vec![0, 1] };
        assert_eq!(
            read_range_cached(&layout, &both, 4..8),
            Some(vec![4, 5, 100, 101])
        );
        let only_a = InMemory { cached: vec![0] };
        assert_eq!(
            read_range_cached(&layout, &only_a, 0..6),
            Some(vec![0, 1, 2, 3, 4, 5])
        );
        assert_eq!(read_range_cached(&layout, &only_a, 4..8), None);
    }

    #[test]
    fn files_missing_pieces_names_both_sides_of_a_shared_piece() {
        let (meta, layout) = layout();
        let mut have = Bitfield::full(4);
        have.clear(1);
        assert_eq!(files_missing_pieces(&layout, &have), vec![0, 1]);
        let e = incomplete(&meta, &layout, &have).to_string();
        assert_eq!(e, "1 of 4 pieces are absent or do not verify, in d/a, d/b");
    }

    #[test]
    fn check_files_present_names_absent_and_short_files() {
        let (meta, _) = layout();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/a"), b"1234").unwrap();
        let e = check_files_present(&meta, dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("2 of 2 files in "), "{e}");
        assert!(e.ends_with(": d/a (4 bytes, not 6), d/b (absent)"), "{e}");
        std::fs::write(dir.path().join("d/a"), b"123456").unwrap();
        std::fs::write(dir.path().join("d/b"), [0u8; 10]).unwrap();
        assert!(check_files_present(&meta, dir.path()).is_ok());
    }
}
