//! The `--events` JSON-lines log: one object a line with an `event` field and `ms` since start.
//!
//! Scripts and tests read it to see what happened (which pieces were verified in which order,
//! which peers came and went) without parsing human log lines.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::rt::{Receiver, Sender, TrySendError};

/// Something worth recording.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Started {
        info_hash: String,
        name: String,
        pieces: u32,
        picker: String,
        storage: String,
    },
    /// The start-up check hashed pieces the resume file did not vouch for: all with data if
    /// there was no usable resume file, else those of `changed_files` files changed since it
    /// was written (named in `files`, first few) and those verified after it.
    Rechecked {
        changed_files: usize,
        files: String,
        pieces: u32,
        verified: u32,
    },
    Resumed {
        pieces: u32,
    },
    Listening {
        addr: String,
    },
    TrackerReply {
        url: String,
        peers: usize,
        interval_s: u64,
    },
    TrackerError {
        url: String,
        error: String,
    },
    /// The session's DHT node listens on `addr` (UDP), joining through `bootstrap` nodes.
    DhtStarted {
        addr: String,
        bootstrap: usize,
    },
    /// A DHT node answered a lookup for the torrent with `peers` addresses.
    DhtPeers {
        peers: usize,
    },
    /// A connected peer named `peers` new addresses through peer exchange (BEP 11).
    PexPeers {
        from: String,
        peers: usize,
    },
    PeerConnected {
        addr: String,
        client: String,
    },
    PeerDropped {
        addr: String,
        reason: String,
    },
    /// A fast-extension peer (BEP 6) said it has every piece (have-all, not a bitfield).
    PeerHasAll {
        addr: String,
    },
    PeerBanned {
        addr: String,
        reason: String,
    },
    PieceVerified {
        piece: u32,
    },
    /// A v2 peer's hash request (BEP 52) was answered: `length` piece-layer hashes of the file
    /// with `root` (hex) from `index`, and `uncles` proof hashes.
    HashesServed {
        addr: String,
        root: String,
        index: u32,
        length: u32,
        uncles: u32,
    },
    HashFailed {
        piece: u32,
        peers: Vec<String>,
    },
    ReadWaiting {
        offset: u64,
        len: u64,
    },
    ReadTimeout {
        offset: u64,
        len: u64,
    },
    Complete {
        downloaded: u64,
        uploaded: u64,
    },
    StorageError {
        error: String,
    },
    /// The picker broke (a plugin panicked); the download carries on with `fallback`.
    PickerFault {
        picker: String,
        error: String,
        fallback: String,
    },
    /// The torrent was paused: connections closed, no fetching or announcing.
    Paused,
    /// A torrent was added to the session.
    Added {
        name: String,
    },
    /// A torrent was removed from the session.
    Removed,
    /// A file of a watch folder was not added: not a torrent, or one that cannot start.
    WatchSkipped {
        file: String,
        error: String,
    },
    /// A magnet link's metadata is being fetched (`name` is the link's `dn`).
    MetadataFetching {
        name: Option<String>,
    },
    /// A magnet link's metadata arrived and matched its info-hash (`size` of the info
    /// dictionary in bytes).
    MetadataFetched {
        name: String,
        size: u64,
    },
    /// A v2 torrent's piece layers came from peers, each proven against its file's root.
    PieceLayersFetched {
        files: usize,
        hashes: usize,
    },
    /// A v2 torrent's piece layers were computed from a complete copy of its files on disk.
    PieceLayersHashed {
        files: usize,
        hashes: usize,
    },
    /// A magnet link's metadata fetch ended without a usable torrent.
    MetadataFailed {
        error: String,
    },
    Stopped,
}

/// An event as subscribers see it: when (ms since the session started) and which torrent.
#[derive(Debug, Clone, Serialize)]
pub struct Stamped {
    #[serde(flatten)]
    pub event: Event,
    pub ms: u64,
    /// The info-hash (hex) of the torrent it concerns, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torrent: Option<String>,
}

/// The session's event bus: every torrent emits here; subscribers (the JSON-lines file, a
/// status display, an HTTP event stream) each get their own bounded queue. Emitting never
/// blocks and never does I/O, so it is safe anywhere; a subscriber that falls behind by a whole
/// queue loses events (counted and logged) rather than slowing the torrents.
pub struct EventBus {
    start: Instant,
    subscribers: Mutex<Vec<Sender<Stamped>>>,
    lost: AtomicU64,
}

impl EventBus {
    pub fn new() -> Arc<Self> {
        Arc::new(EventBus {
            start: Instant::now(),
            subscribers: Mutex::new(Vec::new()),
            lost: AtomicU64::new(0),
        })
    }

    /// A new subscriber holding up to `cap` events not yet taken.
    pub fn subscribe(&self, cap: usize) -> Receiver<Stamped> {
        let (tx, rx) = crate::rt::bounded(cap);
        if let Ok(mut s) = self.subscribers.lock() {
            s.push(tx);
        }
        rx
    }

    /// Ends every subscription: subscribers see the end after the events already queued.
    pub fn close(&self) {
        if let Ok(mut s) = self.subscribers.lock() {
            s.clear();
        }
    }

    /// Events dropped because a subscriber was full.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    fn publish(&self, event: Event, torrent: Option<String>) {
        let stamped = Stamped {
            event,
            ms: self.start.elapsed().as_millis() as u64,
            torrent,
        };
        let Ok(mut subs) = self.subscribers.lock() else {
            return;
        };
        subs.retain(|tx| match tx.try_send(stamped.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                if self.lost.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!("an event subscriber fell behind; events are being lost");
                }
                true
            }
            Err(TrySendError::Closed(_)) => false,
        });
    }

    /// A sink for session-wide events.
    pub fn sink(self: &Arc<Self>) -> EventSink {
        EventSink {
            bus: Some(self.clone()),
            torrent: None,
        }
    }
}

/// Where events go; cheap to clone, a no-op when disabled.
#[derive(Clone)]
pub struct EventSink {
    bus: Option<Arc<EventBus>>,
    torrent: Option<String>,
}

impl EventSink {
    /// A sink that drops everything.
    pub fn disabled() -> Self {
        EventSink {
            bus: None,
            torrent: None,
        }
    }

    /// The same bus, with events tagged as concerning torrent `info_hash`.
    pub fn for_torrent(&self, info_hash: &str) -> EventSink {
        EventSink {
            bus: self.bus.clone(),
            torrent: Some(info_hash.to_string()),
        }
    }

    pub fn emit(&self, event: Event) {
        if let Some(bus) = &self.bus {
            bus.publish(event, self.torrent.clone());
        }
    }
}

/// Subscribes a JSON-lines file (one object a line with an `event` field and `ms`) to a bus.
/// Lines are written and flushed on a thread of their own, so a crash loses nothing already
/// written and no torrent ever waits for the disk.
pub struct EventFile {
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Events a file subscriber may lag behind before events are lost: a whole 256 MiB download
/// of 1,024 pieces is about 1,100 events.
const FILE_QUEUE: usize = 1 << 16;

impl EventFile {
    /// Creates (truncates) `path` and writes every event of `bus` to it.
    pub fn start(path: &Path, bus: &EventBus) -> std::io::Result<EventFile> {
        let f = File::create(path)?;
        let rx = bus.subscribe(FILE_QUEUE);
        let thread = std::thread::Builder::new()
            .name("rivulet-events".into())
            .spawn(move || {
                let mut w = BufWriter::new(f);
                while let Ok(e) = crate::rt::block_on(rx.recv()) {
                    // A failed write of the log must not stop the download.
                    if serde_json::to_writer(&mut w, &e).is_ok() {
                        let _ = w.write_all(b"\n").and_then(|_| w.flush());
                    }
                }
            })?;
        Ok(EventFile {
            thread: Some(thread),
        })
    }

    /// Waits until every event already emitted is written; call after [`EventBus::close`].
    pub fn finish(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_json_lines_tagged_with_the_torrent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ev.jsonl");
        let bus = EventBus::new();
        let file = EventFile::start(&p, &bus).unwrap();
        let s = bus.sink().for_torrent("abcd");
        s.emit(Event::PieceVerified { piece: 12 });
        bus.sink().emit(Event::Resumed { pieces: 3 });
        bus.close();
        file.finish();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["event"], "piece_verified");
        assert_eq!(lines[0]["piece"], 12);
        assert_eq!(lines[0]["torrent"], "abcd");
        assert!(lines[0]["ms"].is_u64());
        assert_eq!(lines[1]["event"], "resumed");
        assert!(lines[1].get("torrent").is_none());
    }

    #[test]
    fn a_full_subscriber_loses_events_instead_of_blocking() {
        let bus = EventBus::new();
        let rx = bus.subscribe(2);
        for piece in 0..5 {
            bus.sink().emit(Event::PieceVerified { piece });
        }
        assert_eq!(rx.len(), 2);
        assert_eq!(bus.lost(), 3);
    }
}
