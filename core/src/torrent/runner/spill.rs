//! Blocks of spilled pieces (longer than `assembly::MAX_HELD_PIECE`) written to storage as
//! they come, on blocking threads, each reported back to the state with its SHA-1 (kept for
//! blame). A connection that delivered such blocks waits for their writes before it reads on,
//! so what is in flight stays bounded by the connections' reads, not the pieces' length.

use std::sync::Arc;

use sha1::{Digest, Sha1};

use super::Torrent;
use crate::plugin::StorageError;
use crate::rt;
use crate::torrent::assembly::BlockDigest;
use crate::torrent::effects::SpillBlock;

impl Torrent {
    /// Writes `blocks` one after another and tells the state of each.
    pub(super) async fn write_spilled(self: &Arc<Self>, blocks: Vec<SpillBlock>) {
        for block in blocks {
            let t = self.clone();
            let (block, written) = rt::blocking(move || {
                let written = t.write_block(&block);
                (block, written)
            })
            .await;
            self.with_state(|s, fx| s.block_written(&block, written, fx));
        }
    }

    fn write_block(&self, block: &SpillBlock) -> Result<BlockDigest, StorageError> {
        let start = self.layout.piece_range(block.piece).start + u64::from(block.offset);
        self.write_at(start, &block.data)?;
        Ok(Sha1::digest(&block.data).into())
    }
}
