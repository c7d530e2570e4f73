//! A torrent's life after it went live: waiting for completion, pause, resume and shutdown
//! (connections closed, peer sources told, storage flushed, every task joined, data freed).

use std::sync::Arc;

use super::{SHUTDOWN_GRACE, Torrent};
use crate::events::Event;
use crate::peer::DropReason;
use crate::rt;
use crate::torrent::error::EngineError;
use crate::torrent::state::Phase;

impl Torrent {
    pub async fn wait_complete(self: &Arc<Self>) -> Result<(), EngineError> {
        loop {
            let (tx, rx) = rt::bounded(1);
            {
                let mut s = self.state();
                if let Some(f) = &s.storage_fault {
                    return Err(EngineError::Storage(f.error.clone()));
                }
                if s.complete() {
                    return Ok(());
                }
                if s.phase == Phase::Stopped {
                    return Err(EngineError::Stopped);
                }
                s.complete_waiters.push(tx);
            }
            if rx.recv().await.is_err() {
                return Err(EngineError::Stopped);
            }
        }
    }

    /// Stops fetching and serving and closes every connection; the torrent can resume.
    pub async fn pause(self: &Arc<Self>) {
        let paused = self.with_state(|s, fx| {
            if s.phase != Phase::Live {
                return false;
            }
            s.phase = Phase::Paused;
            s.disconnect_all(DropReason::Paused, fx);
            fx.emit(Event::Paused);
            true
        });
        if paused {
            self.wake_tiers();
            self.save_resume().await;
        }
    }

    pub fn resume(self: &Arc<Self>) {
        let resumed = self.with_state(|s, fx| {
            if s.phase != Phase::Paused {
                return false;
            }
            s.phase = Phase::Live;
            fx.emit(Event::Resumed {
                pieces: s.pieces.have.count(),
            });
            true
        });
        if resumed {
            self.wake_tiers();
            self.dial_more();
        }
    }

    pub async fn shutdown(self: &Arc<Self>) {
        self.with_state(|s, fx| {
            s.phase = Phase::Stopped;
            s.readers.close_all();
            s.complete_waiters.clear();
            s.disconnect_all(DropReason::ShuttingDown, fx);
        });
        if self.stop.is_cancelled() {
            return;
        }
        // Peer sources see this and say goodbye (a tracker's `stopped`) as they end.
        self.stop.cancel();
        self.state().resume_dirty = true;
        self.save_resume().await;
        let t = self.clone();
        rt::blocking(move || {
            if let Err(e) = t.storage.flush() {
                tracing::error!("flushing storage: {e}");
            }
        })
        .await;
        self.tasks.join(SHUTDOWN_GRACE).await;
        // The data is free for whoever comes next (a new add of the same torrent too).
        if let Ok(mut lock) = self.data_lock.lock() {
            lock.take();
        }
        self.events.emit(Event::Stopped);
    }
}
