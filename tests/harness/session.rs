//! The engine in-process: a rivulet session of the test's own (every built-in plugin, listening
//! on a loopback port the kernel picks, resume state and events log under the test's work dir)
//! driven through the core `Session` API rather than the `rivulet` binary, plus the metainfo of a
//! fixture to add to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rivulet_core::config::Settings;
use rivulet_core::metainfo::Metainfo;
use rivulet_core::rt;
use rivulet_core::session::{AddTorrent, Mode, Session, TorrentSource};
use rivulet_core::torrent::TorrentHandle;

use crate::events::Events;
use crate::fixture::Fixture;
use crate::workdir::WorkDir;

/// A session and where its events go.
pub struct TestSession {
    pub session: Session,
    pub events_path: PathBuf,
}

impl TestSession {
    /// Starts session `name` on 127.0.0.1 (port picked by the kernel) with its state in
    /// `<work>/<name>-state` and its events in `<work>/<name>-events.jsonl`.
    pub fn start(work: &WorkDir, name: &str) -> TestSession {
        Self::start_with(work, name, &[])
    }

    /// [`TestSession::start`] with more settings (`("dht", "true")`, ...), which win over the
    /// test defaults.
    pub fn start_with(work: &WorkDir, name: &str, extra: &[(&str, String)]) -> TestSession {
        let state_dir = work.subdir(&format!("{name}-state"));
        let mut overrides = vec![
            ("listen", "127.0.0.1:0".to_string()),
            ("state_dir", state_dir.display().to_string()),
            ("download_dir", work.path().display().to_string()),
            // The DHT node is a session task of its own and would count in `live_tasks`.
            ("dht", "false".to_string()),
        ];
        overrides.extend(extra.iter().cloned());
        // No environment and no config file: the machine's settings must not leak into a test.
        let settings = Settings::load_from(None, std::iter::empty(), &overrides)
            .unwrap_or_else(|e| panic!("settings for session {name}: {e}"));
        let events_path = work.join(&format!("{name}-events.jsonl"));
        let opts = rivulet_plugins::session_options(settings, Some(events_path.clone()));
        let session = rt::block_on(Session::new(opts))
            .unwrap_or_else(|e| panic!("starting session {name}: {e}"));
        TestSession {
            session,
            events_path,
        }
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.session.listen_addr()
    }

    /// Adds `meta` to download or seed in `data_dir`, dialing `peers` besides its trackers.
    pub fn add(
        &self,
        meta: &Arc<Metainfo>,
        data_dir: &Path,
        mode: Mode,
        peers: &[SocketAddr],
    ) -> TorrentHandle {
        let add = AddTorrent {
            source: TorrentSource::Metainfo(meta.clone()),
            data_dir: data_dir.to_path_buf(),
            mode,
            read_timeout: None,
            peers: peers.to_vec(),
        };
        rt::block_on(self.session.add(add))
            .unwrap_or_else(|e| panic!("adding {} to the session: {e}", meta.name))
    }

    /// Every event written so far.
    pub fn events(&self) -> Events {
        Events::read(&self.events_path)
    }

    /// Shuts the session down within `timeout`.
    pub fn shutdown(&self, timeout: Duration) {
        rt::block_on(rt::timeout(timeout, self.session.shutdown()))
            .unwrap_or_else(|_| panic!("session shutdown took over {timeout:?}"));
    }
}

/// Waits until `handle` has every piece; panics if it fails or `timeout` passes first, with the
/// torrent's progress.
pub fn wait_complete(handle: &TorrentHandle, timeout: Duration) {
    match rt::block_on(rt::timeout(timeout, handle.wait_complete())) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{} failed: {e}", handle.meta().name),
        Err(_) => panic!(
            "{} not complete after {timeout:?}: {:?}",
            handle.meta().name,
            handle.stats()
        ),
    }
}

/// The parsed metainfo of `fixture` announcing to `announce`.
pub fn metainfo(fixture: &Fixture, announce: &str, work: &WorkDir) -> Arc<Metainfo> {
    let path = fixture.torrent(announce, "session", work.path());
    let meta =
        Metainfo::from_file(&path).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    Arc::new(meta)
}

/// The metainfo of `fixture` with no tracker at all: peers come from the caller or dial in.
pub fn metainfo_without_trackers(fixture: &Fixture, work: &WorkDir) -> Arc<Metainfo> {
    // mktorrent insists on an announce URL; it lies outside the info dictionary, so dropping it
    // leaves the info-hash as it is.
    let mut meta = (*metainfo(fixture, "http://127.0.0.1:1/announce", work)).clone();
    meta.trackers.clear();
    Arc::new(meta)
}
