//! The resume file: which pieces were verified and flushed, and the size and times of each data
//! file when that was true, written atomically.
//!
//! It is written only after the storage was flushed, so a piece it names is on disk; the file
//! stamps are read after that flush, so a file changed since (truncated, emptied, edited) no
//! longer matches and its pieces are checked again ([`super::recheck`]). A missing, foreign,
//! damaged or older-format file vouches for nothing: everything on disk is re-hashed.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::file_stamp::FileStamp;
use crate::bitfield::Bitfield;
use crate::metainfo::Metainfo;

/// Version 1 had no file stamps; it cannot vouch for data that may have changed since.
const FORMAT: u32 = 2;

#[derive(Serialize, Deserialize)]
struct ResumeFile {
    format: u32,
    info_hash: ByteBuf,
    pieces: ByteBuf,
    /// One per torrent file, in torrent order; an empty list for a file that did not exist.
    files: Vec<Vec<i64>>,
}

/// What a resume file vouches for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Saved {
    pub pieces: Bitfield,
    /// Per torrent file, as it was when `pieces` was true of it.
    pub stamps: Vec<Option<FileStamp>>,
}

pub(crate) fn path_for(state_dir: &Path, meta: &Metainfo) -> PathBuf {
    state_dir.join(format!("{}.resume", meta.info_hash.hex()))
}

/// Loads what the file vouches for, or `None` if it is absent, damaged, of an older format or
/// of another torrent.
pub(crate) fn load(path: &Path, meta: &Metainfo) -> Option<Saved> {
    let data = std::fs::read(path).ok()?;
    // serde_bencode recurses once per nesting level; a damaged file must not overflow the stack.
    let decoded = crate::metainfo::span::value_end(&data)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_bencode::from_bytes::<ResumeFile>(&data).map_err(|e| e.to_string()));
    let r = match decoded {
        Ok(r) if r.format == FORMAT => r,
        Ok(r) => {
            tracing::info!(
                "resume file {} has format {}, not {FORMAT}: checking the data again",
                path.display(),
                r.format
            );
            return None;
        }
        Err(e) => {
            tracing::warn!(
                "ignoring damaged or older resume file {}: {e}",
                path.display()
            );
            return None;
        }
    };
    if r.info_hash.as_slice() != meta.info_hash.0 || r.files.len() != meta.files.len() {
        tracing::warn!("ignoring resume file {} of another torrent", path.display());
        return None;
    }
    let Some(stamps) = r.files.iter().map(|f| FileStamp::from_fields(f)).collect() else {
        tracing::warn!("ignoring damaged resume file {}", path.display());
        return None;
    };
    let pieces = Bitfield::from_wire(&r.pieces, meta.piece_count()).ok()?;
    Some(Saved { pieces, stamps })
}

/// Writes the resume file through a temporary file and a rename, so a crash leaves either the
/// old or the new one. `stamps` must have been read after the flush that made `have` durable.
pub(crate) fn save(
    path: &Path,
    meta: &Metainfo,
    have: &Bitfield,
    stamps: &[Option<FileStamp>],
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let r = ResumeFile {
        format: FORMAT,
        info_hash: ByteBuf::from(meta.info_hash.0.to_vec()),
        pieces: ByteBuf::from(have.as_bytes().to_vec()),
        files: stamps
            .iter()
            .map(|s| s.map(FileStamp::fields).unwrap_or_default())
            .collect(),
    };
    let bytes = serde_bencode::to_bytes(&r).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("resume.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Metainfo {
        let t = format!(
            "d4:infod6:lengthi4e4:name1:f12:piece lengthi4e6:pieces20:{}ee",
            "x".repeat(20)
        );
        Metainfo::from_bytes(t.as_bytes()).unwrap()
    }

    fn stamp() -> FileStamp {
        FileStamp::from_fields(&[4, 1_700_000_000_123_456_789, -5])
            .unwrap()
            .unwrap()
    }

    #[test]
    fn round_trip_keeps_pieces_and_file_stamps() {
        let dir = tempfile::tempdir().unwrap();
        let m = meta();
        let path = path_for(dir.path(), &m);
        let mut have = Bitfield::new(1);
        have.set(0);
        save(&path, &m, &have, &[Some(stamp())]).unwrap();
        assert_eq!(
            load(&path, &m),
            Some(Saved {
                pieces: have.clone(),
                stamps: vec![Some(stamp())]
            })
        );
        save(&path, &m, &have, &[None]).unwrap();
        assert_eq!(load(&path, &m).unwrap().stamps, vec![None]);
    }

    #[test]
    fn damaged_and_first_format_files_vouch_for_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let m = meta();
        let path = path_for(dir.path(), &m);
        // Deep enough to overflow a thread's stack if it reached serde_bencode.
        let n = 1_000_000;
        let deep = format!("d1:x{}{}e", "l".repeat(n), "e".repeat(n));
        std::fs::write(&path, deep).unwrap();
        assert_eq!(load(&path, &m), None);
        std::fs::write(&path, b"d9:info_hash").unwrap();
        assert_eq!(load(&path, &m), None);
        // What format 1 wrote for this torrent with its one piece verified.
        let mut v1 = b"d12:file_lengthsli4ee9:info_hash20:".to_vec();
        v1.extend_from_slice(&m.info_hash.0);
        v1.extend_from_slice(b"6:pieces1:\x80e");
        std::fs::write(&path, v1).unwrap();
        assert_eq!(load(&path, &m), None);
    }
}
