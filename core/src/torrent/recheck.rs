//! What the storage already holds when a torrent starts: the pieces the resume file names,
//! plus any other piece whose data hashes right (the resume file lags behind a crash).

use std::ops::Range;

use sha1::{Digest, Sha1};

use super::resume;
use crate::bitfield::Bitfield;
use crate::layout::Layout;
use crate::metainfo::Metainfo;
use crate::plugin::{Storage, StorageError};

pub(crate) fn read_range(
    layout: &Layout,
    storage: &dyn Storage,
    range: Range<u64>,
) -> Result<Vec<u8>, StorageError> {
    let mut buf = vec![0u8; (range.end - range.start) as usize];
    for span in layout.spans(range) {
        let at = span.range_offset as usize;
        storage.read(span.file, span.offset, &mut buf[at..at + span.len as usize])?;
    }
    Ok(buf)
}

/// Pieces already complete: those the resume file names, plus any other piece whose data on
/// disk hashes right (the resume file lags behind a crash).
pub(crate) fn initial_have(
    meta: &Metainfo,
    layout: &Layout,
    storage: &dyn Storage,
    resume: Option<&std::path::Path>,
) -> Bitfield {
    let n = meta.piece_count();
    let Some(resume) = resume else {
        return Bitfield::new(n);
    };
    let mut have = resume::load(resume, meta).unwrap_or_else(|| Bitfield::new(n));
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
        let Ok(data) = read_range(layout, storage, range) else {
            continue;
        };
        if Sha1::digest(&data).as_slice() == meta.piece_hashes[p as usize] {
            have.set(p);
        }
    }
    have
}
