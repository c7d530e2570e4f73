//! The `--events` JSON-lines log: one object a line with an `event` field and `ms` since start.
//!
//! Scripts and tests read it to see what happened (which pieces were verified in which order,
//! which peers came and went) without parsing human log lines.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

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
    PeerConnected {
        addr: String,
        client: String,
    },
    PeerDropped {
        addr: String,
        reason: String,
    },
    PeerBanned {
        addr: String,
        reason: String,
    },
    PieceVerified {
        piece: u32,
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
    Stopped,
}

/// Where events go; cheap to clone, a no-op when disabled.
#[derive(Clone)]
pub struct EventSink {
    inner: Option<Arc<Mutex<BufWriter<File>>>>,
    start: Instant,
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    event: &'a Event,
    ms: u64,
}

impl EventSink {
    /// A sink that drops everything.
    pub fn disabled() -> Self {
        EventSink {
            inner: None,
            start: Instant::now(),
        }
    }

    /// Creates (truncates) `path` and writes events to it.
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        let f = File::create(path)?;
        Ok(EventSink {
            inner: Some(Arc::new(Mutex::new(BufWriter::new(f)))),
            start: Instant::now(),
        })
    }

    /// Milliseconds since the sink was made.
    pub fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Records one event; the line is flushed at once so a crash loses nothing already said.
    pub fn emit(&self, event: Event) {
        let Some(inner) = &self.inner else { return };
        let line = Line {
            event: &event,
            ms: self.elapsed_ms(),
        };
        let Ok(mut w) = inner.lock() else { return };
        if serde_json::to_writer(&mut *w, &line).is_ok() {
            // A failed write of the log must not stop the download.
            let _ = w.write_all(b"\n").and_then(|_| w.flush());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ev.jsonl");
        let s = EventSink::to_file(&p).unwrap();
        s.emit(Event::PieceVerified { piece: 12 });
        s.emit(Event::Resumed { pieces: 3 });
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["event"], "piece_verified");
        assert_eq!(lines[0]["piece"], 12);
        assert!(lines[0]["ms"].is_u64());
        assert_eq!(lines[1]["event"], "resumed");
    }
}
