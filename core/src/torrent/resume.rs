//! The resume file: which pieces were verified and flushed, written atomically.
//!
//! It is written only after the storage was flushed, so a piece it names is on disk. A missing,
//! foreign or damaged file is ignored (the engine then re-hashes what is on disk).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::bitfield::Bitfield;
use crate::metainfo::Metainfo;

#[derive(Serialize, Deserialize)]
struct ResumeFile {
    info_hash: ByteBuf,
    pieces: ByteBuf,
    file_lengths: Vec<u64>,
}

pub(crate) fn path_for(state_dir: &Path, meta: &Metainfo) -> PathBuf {
    state_dir.join(format!("{}.resume", meta.info_hash.hex()))
}

/// Loads the verified pieces, or `None` if the file is absent or does not match the torrent.
pub(crate) fn load(path: &Path, meta: &Metainfo) -> Option<Bitfield> {
    let data = std::fs::read(path).ok()?;
    // serde_bencode recurses once per nesting level; a damaged file must not overflow the stack.
    let decoded = crate::metainfo::span::value_end(&data)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_bencode::from_bytes(&data).map_err(|e| e.to_string()));
    let r: ResumeFile = match decoded {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("ignoring damaged resume file {}: {e}", path.display());
            return None;
        }
    };
    let lengths: Vec<u64> = meta.files.iter().map(|f| f.length).collect();
    if r.info_hash.as_slice() != meta.info_hash.0 || r.file_lengths != lengths {
        tracing::warn!("ignoring resume file {} of another torrent", path.display());
        return None;
    }
    Bitfield::from_wire(&r.pieces, meta.piece_count()).ok()
}

/// Writes the resume file through a temporary file and a rename, so a crash leaves either the
/// old or the new one.
pub(crate) fn save(path: &Path, meta: &Metainfo, have: &Bitfield) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let r = ResumeFile {
        info_hash: ByteBuf::from(meta.info_hash.0.to_vec()),
        pieces: ByteBuf::from(have.as_bytes().to_vec()),
        file_lengths: meta.files.iter().map(|f| f.length).collect(),
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

    #[test]
    fn round_trip_and_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        let m = meta();
        let path = path_for(dir.path(), &m);
        let mut have = Bitfield::new(1);
        have.set(0);
        save(&path, &m, &have).unwrap();
        assert_eq!(load(&path, &m), Some(have));
        // Deep enough to overflow a thread's stack if it reached serde_bencode.
        let n = 1_000_000;
        let deep = format!("d1:x{}{}e", "l".repeat(n), "e".repeat(n));
        std::fs::write(&path, deep).unwrap();
        assert_eq!(load(&path, &m), None);
        std::fs::write(&path, b"d9:info_hash").unwrap();
        assert_eq!(load(&path, &m), None);
    }
}
