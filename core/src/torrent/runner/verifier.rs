//! The verifier: whole pieces are hashed and written (a spilled one, already in storage, is
//! hashed from there) on blocking threads, several at once, so
//! a connection's reader goes on receiving while pieces are checked; results are reported in the
//! order the pieces were completed, so a reader's pieces come before the readahead behind them.

use std::sync::Arc;

use super::Torrent;
use crate::plugin::StorageError;
use crate::rt::{self, Receiver};
use crate::torrent::assembly::PieceAssembly;
use crate::torrent::recheck;

/// Pieces hashed and written at once. Results are taken oldest first, so with only as many as
/// there are cores a finished newer piece would hold its slot idle behind a slower older one
/// (measured: 0.77 s instead of 0.44 s for 256 MiB on two cores).
const VERIFY_PARALLEL: usize = 4;

/// Runs the verifier of `t` until it stops.
pub(super) async fn run(t: Arc<Torrent>, queue: Receiver<PieceAssembly>) {
    t.verify_queue(queue).await
}

impl Torrent {
    /// The verifier task of this torrent.
    async fn verify_queue(self: Arc<Self>, queue: Receiver<PieceAssembly>) {
        use futures::StreamExt;
        let mut checking = futures::stream::FuturesOrdered::new();
        loop {
            let next = if checking.len() >= VERIFY_PARALLEL {
                rt::Either::Right(checking.next().await)
            } else if checking.is_empty() {
                rt::Either::Left(rt::race(queue.recv(), self.stopped.cancelled()).await)
            } else {
                let work = rt::race(queue.recv(), self.stopped.cancelled());
                rt::race(work, checking.next()).await
            };
            match next {
                rt::Either::Left(rt::Either::Left(Ok(asm))) => {
                    let t = self.clone();
                    checking.push_back(rt::blocking(move || {
                        let result = t.check_and_write(&asm);
                        (asm, result)
                    }));
                }
                // The queue closed or the torrent stops: what is under check is dropped
                // unreported.
                rt::Either::Left(_) => return,
                rt::Either::Right(Some((asm, result))) => self.piece_checked(asm, result),
                rt::Either::Right(None) => {}
            }
        }
    }

    /// Verifies a whole piece against its hash and stores it; a spilled piece is in storage
    /// already and is checked there.
    fn check_and_write(&self, asm: &PieceAssembly) -> Checked {
        if asm.spilled() {
            let stored = self.storage.as_ref();
            return match recheck::stored_piece_matches(&self.meta, &self.layout, stored, asm.index)
            {
                Ok(true) => Checked::Stored,
                Ok(false) => Checked::HashMismatch,
                Err(e) => Checked::NotStored(e),
            };
        }
        if !self.meta.piece_matches(asm.index, &asm.data) {
            return Checked::HashMismatch;
        }
        match self.write_at(self.layout.piece_range(asm.index).start, &asm.data) {
            Ok(()) => Checked::Stored,
            Err(e) => Checked::NotStored(e),
        }
    }

    fn piece_checked(self: &Arc<Self>, asm: PieceAssembly, result: Checked) {
        if let Checked::Stored = result
            && let Ok(mut c) = self.checked.lock()
        {
            c.set(asm.index);
        }
        self.with_state(|s, fx| match result {
            Checked::Stored => s.piece_verified(&asm, fx),
            Checked::HashMismatch => s.piece_failed(asm, fx),
            Checked::NotStored(e) => s.piece_not_stored(asm.index, e, fx),
        });
    }

    /// Writes `data` at torrent-global offset `start`, file by file (a whole piece, or a block
    /// of a spilled one).
    pub(super) fn write_at(&self, start: u64, data: &[u8]) -> Result<(), StorageError> {
        for span in self.layout.spans(start..start + data.len() as u64) {
            let at = span.range_offset as usize;
            self.storage
                .write(span.file, span.offset, &data[at..at + span.len as usize])?;
        }
        Ok(())
    }
}

/// How a piece's check went.
enum Checked {
    Stored,
    HashMismatch,
    NotStored(StorageError),
}
