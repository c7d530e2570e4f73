//! The read path of a torrent: reads wait for their pieces (which become urgent), readahead
//! hints put later deadlines on pieces, and stored data is read back off the async threads,
//! hashed once per run before it is served (a piece changed on disk under us is fetched again,
//! never served). A storage that let data go (a bounded RAM cache) is probed piece by piece so
//! only what it really lost is fetched again.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Torrent;
use crate::events::Event;
use crate::plugin::StorageError;
use crate::rt;
use crate::torrent::assembly::MAX_HELD_PIECE;
use crate::torrent::error::ReadError;
use crate::torrent::recheck;
use crate::torrent::state::{Phase, TorrentState};

/// Readahead deadlines come this long after reads made at the same moment.
const READAHEAD_AFTER_READS: Duration = Duration::from_secs(1);

impl Torrent {
    /// Reads `range` of pieces we have from storage, off the async threads. A piece not yet
    /// hashed during this run (vouched for by the resume data only) is read whole and hashed
    /// first: one that changed on disk is dropped and fetched again, never served. Pieces the
    /// storage no longer holds are dropped from `have` (only those: a bounded cache that let one
    /// piece of a read go still holds the others) and the read fails with `Missing`.
    pub(super) async fn read_verified(
        self: &Arc<Self>,
        range: Range<u64>,
    ) -> Result<Vec<u8>, StorageError> {
        if let Some(data) = self.read_cached(&range) {
            return Ok(data);
        }
        let t = self.clone();
        match rt::blocking(move || t.read_verified_blocking(range)).await {
            Ok(data) => Ok(data),
            Err(ReadBack::Storage(e)) => Err(e),
            Err(ReadBack::Corrupt(pieces)) => {
                self.with_state(|s, fx| {
                    for &p in &pieces {
                        s.piece_corrupt_on_disk(p, fx);
                    }
                });
                Err(StorageError::Missing)
            }
            Err(ReadBack::Lost(pieces)) => {
                self.with_state(|s, fx| {
                    for &p in &pieces {
                        s.piece_evicted(p, fx);
                    }
                    s.fill_all(fx);
                });
                Err(StorageError::Missing)
            }
        }
    }

    /// `range` on this thread, if every piece under it was hashed during this run and the
    /// storage holds all of it in memory: a file served from the page cache skips the handoff
    /// to a blocking thread and back, which on two cores made a third busy thread beside the
    /// HTTP client and the connection's (completed file over HTTP at 0.77 of rqbit, whose
    /// reads stay on the connection's thread: benches/RESULTS.md, issue 11, 2026-12-05).
    fn read_cached(&self, range: &Range<u64>) -> Option<Vec<u8>> {
        let all_checked = {
            let c = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            self.layout.pieces_for(range.clone()).all(|p| c.get(p))
        };
        all_checked
            .then(|| recheck::read_range_cached(&self.layout, self.storage.as_ref(), range.clone()))
            .flatten()
    }

    fn read_verified_blocking(&self, range: Range<u64>) -> Result<Vec<u8>, ReadBack> {
        let pieces = self.layout.pieces_for(range.clone());
        let unchecked: Vec<u32> = {
            let c = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            pieces.clone().filter(|&p| !c.get(p)).collect()
        };
        let (mut corrupt, mut lost) = (Vec::new(), Vec::new());
        // The pieces just hashed, kept to answer from: reading them again would double the
        // disk work of a first read (a fresh mount of a complete cache read at 898 MB/s
        // instead of 1449 MB/s before read-back hashing, when the range was read twice).
        let mut hashed: Vec<(Range<u64>, Vec<u8>)> = Vec::new();
        // Pieces too long to hold are hashed a chunk at a time and read again for the answer.
        let held = self.meta.piece_length <= MAX_HELD_PIECE;
        let all_unchecked = unchecked.len() == pieces.len() && held;
        for p in unchecked {
            let piece = self.layout.piece_range(p);
            let stored = self.storage.as_ref();
            let checked = match held {
                true => recheck::read_range(&self.layout, stored, piece.clone())
                    .map(|data| (self.meta.piece_matches(p, &data), Some(data))),
                false => recheck::stored_piece_matches(&self.meta, &self.layout, stored, p)
                    .map(|ok| (ok, None)),
            };
            match checked {
                Ok((true, data)) => {
                    if let Ok(mut c) = self.checked.lock() {
                        c.set(p);
                    }
                    if let (true, Some(data)) = (all_unchecked, data) {
                        hashed.push((piece, data));
                    }
                }
                Ok(_) => corrupt.push(p),
                Err(StorageError::Evicted | StorageError::Missing) => lost.push(p),
                Err(e) => return Err(ReadBack::Storage(e)),
            }
        }
        if !corrupt.is_empty() {
            return Err(ReadBack::Corrupt(corrupt));
        }
        if !lost.is_empty() {
            return Err(ReadBack::Lost(lost));
        }
        if all_unchecked && !hashed.is_empty() {
            let mut out = Vec::with_capacity((range.end - range.start) as usize);
            for (piece, data) in &hashed {
                let from = (range.start.max(piece.start) - piece.start) as usize;
                let to = (range.end.min(piece.end) - piece.start) as usize;
                out.extend_from_slice(&data[from..to]);
            }
            return Ok(out);
        }
        match recheck::read_range(&self.layout, self.storage.as_ref(), range.clone()) {
            Ok(data) => Ok(data),
            Err(StorageError::Evicted | StorageError::Missing) => {
                // Which pieces went: probe each part of the range on its own.
                let gone: Vec<u32> = pieces
                    .clone()
                    .filter(|&p| {
                        let r = self.layout.piece_range(p);
                        let part = r.start.max(range.start)..r.end.min(range.end);
                        recheck::read_range(&self.layout, self.storage.as_ref(), part).is_err()
                    })
                    .collect();
                Err(ReadBack::Lost(if gone.is_empty() {
                    pieces.collect()
                } else {
                    gone
                }))
            }
            Err(e) => Err(ReadBack::Storage(e)),
        }
    }

    pub async fn read(self: &Arc<Self>, offset: u64, len: u64) -> Result<Vec<u8>, ReadError> {
        let total = self.meta.total_length;
        if offset > total {
            return Err(ReadError::OutOfRange { offset });
        }
        let end = offset.saturating_add(len).min(total);
        let pieces = self.layout.pieces_for(offset..end);
        let give_up = Instant::now() + self.cfg.read_timeout;
        let mut first_wait = true;
        loop {
            let (tx, rx) = rt::bounded(1);
            let wait = self.with_state(|s, fx| {
                if s.phase == Phase::Stopped {
                    return Err(ReadError::Stopped);
                }
                if let Some(f) = &s.storage_fault {
                    return Err(ReadError::Storage(f.error.clone()));
                }
                if pieces.clone().all(|p| s.pieces.have.get(p)) {
                    return Ok(None);
                }
                let now_ms = s.now_ms();
                let TorrentState {
                    readers,
                    pieces: tracker,
                    ..
                } = s;
                let id = readers.register(
                    pieces.clone(),
                    now_ms,
                    tx,
                    &tracker.have.clone(),
                    tracker.picker(),
                );
                if first_wait {
                    first_wait = false;
                    fx.emit(Event::ReadWaiting {
                        offset,
                        len: end - offset,
                    });
                }
                s.fill_all(fx);
                Ok(Some(id))
            })?;
            let Some(id) = wait else {
                match self.read_verified(offset..end).await {
                    Ok(v) => return Ok(v),
                    // What the storage lost is wanted again; wait for it like any piece.
                    Err(StorageError::Evicted | StorageError::Missing) => {
                        if Instant::now() >= give_up {
                            return Err(self.read_timed_out(offset, end));
                        }
                        continue;
                    }
                    Err(e) => return Err(ReadError::Storage(Arc::new(e))),
                }
            };
            let guard = WaitGuard { torrent: self, id };
            let left = give_up.saturating_duration_since(Instant::now());
            match rt::timeout(left, rx.recv()).await {
                Err(_) => return Err(self.read_timed_out(offset, end)),
                Ok(Err(_)) => return Err(ReadError::Stopped),
                Ok(Ok(())) => drop(guard),
            }
        }
    }

    fn read_timed_out(&self, offset: u64, end: u64) -> ReadError {
        self.events.emit(Event::ReadTimeout {
            offset,
            len: end - offset,
        });
        tracing::warn!("read of {} bytes at {offset} timed out", end - offset);
        ReadError::Timeout {
            offset,
            len: end - offset,
        }
    }

    pub fn prefetch(self: &Arc<Self>, reader: u64, range: Range<u64>, urgency: Duration) {
        let end = range
            .end
            .min(range.start.saturating_add(self.cfg.max_readahead));
        let pieces = self.layout.pieces_for(range.start..end);
        self.with_state(|s, fx| {
            // A window is never due before a read registered now: readers are served first.
            let deadline =
                s.now_ms() + READAHEAD_AFTER_READS.as_millis() as u64 + urgency.as_millis() as u64;
            let TorrentState {
                readers,
                pieces: tracker,
                ..
            } = s;
            let have = tracker.have.clone();
            readers.set_window(reader, Some((pieces, deadline)), &have, tracker.picker());
            s.fill_all(fx);
        });
    }

    pub fn forget_reader(&self, reader: u64) {
        let mut s = self.state();
        let TorrentState {
            readers, pieces, ..
        } = &mut *s;
        let have = pieces.have.clone();
        readers.set_window(reader, None, &have, pieces.picker());
    }
}

enum ReadBack {
    /// Pieces whose data no longer matches their hash.
    Corrupt(Vec<u32>),
    /// Pieces the storage no longer holds (evicted, or files gone).
    Lost(Vec<u32>),
    Storage(StorageError),
}

/// Withdraws a read's deadlines when it finishes, times out or is dropped.
struct WaitGuard<'a> {
    torrent: &'a Torrent,
    id: u64,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut s = self.torrent.state();
        let TorrentState {
            readers, pieces, ..
        } = &mut *s;
        let have = pieces.have.clone();
        readers.unregister(self.id, &have, pieces.picker());
    }
}
