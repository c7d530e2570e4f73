//! A magnet link's `tr` trackers as a peer source for its metadata fetch: announce, hand the
//! peers to the fetch, announce again on the tracker's interval (sooner while no peer has
//! answered) until the fetch ends.

use std::sync::Arc;
use std::time::Duration;

use super::Fetch;
use crate::events::Event;
use crate::plugin::{AnnounceEvent, AnnounceRequest, Tracker};
use crate::rt;
use crate::torrent::PeerSource;

const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(15);
/// Between announces while the metadata is missing: the tracker's interval is for a running
/// torrent, and a fetch with no peer is waiting on this.
const REANNOUNCE: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// What we say is left: unknown before the metadata, and a tracker that took us for a seed
/// (0 left) could answer with leechers only.
const LEFT_UNKNOWN: u64 = 1 << 30;

pub(super) async fn announce(fetch: Arc<Fetch>, tracker: Arc<dyn Tracker>) {
    let key: u32 = rand::random();
    let mut event = AnnounceEvent::Started;
    let mut backoff = Duration::from_secs(5);
    loop {
        let req = AnnounceRequest {
            info_hash: fetch.info_hash.0,
            peer_id: fetch.env.peer_id,
            port: fetch.env.listen_addr.port(),
            uploaded: 0,
            downloaded: 0,
            left: LEFT_UNKNOWN,
            event,
            num_want: 200,
            key,
            timeout: ANNOUNCE_TIMEOUT,
            local_ip: fetch.env.local_ip(),
        };
        let t = tracker.clone();
        let wait = match rt::blocking(move || t.announce(&req)).await {
            Ok(r) => {
                fetch.events.emit(Event::TrackerReply {
                    url: tracker.url().to_string(),
                    peers: r.peers.len(),
                    interval_s: r.interval.as_secs(),
                });
                fetch.add_peers(PeerSource::Tracker, &r.peers);
                event = AnnounceEvent::None;
                backoff = Duration::from_secs(5);
                REANNOUNCE
            }
            Err(e) => {
                tracing::warn!("tracker {}: {e}", tracker.url());
                fetch.events.emit(Event::TrackerError {
                    url: tracker.url().to_string(),
                    error: e.to_string(),
                });
                let b = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                b
            }
        };
        if let rt::Either::Right(()) = rt::race(rt::sleep(wait), fetch.stopped.cancelled()).await {
            return;
        }
    }
}
