//! Trackers as a peer source: one task per BEP 12 tier, announcing on the tracker's interval
//! and handing the peers it returns to the swarm.
//!
//! Within a tier trackers are tried in order and the one that answers moves to the front. A
//! dead tracker only costs its own tier a backoff; the torrent goes on with the others.

use std::sync::Arc;
use std::time::Duration;

use crate::events::Event;
use crate::metainfo::InfoHash;
use crate::plugin::{AnnounceEvent, AnnounceRequest, AnnounceResponse, Tracker};
use crate::rt::{self, Either, Receiver};
use crate::torrent::{PeerSource, Phase, Torrent};

const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(15);
const STOPPED_TIMEOUT: Duration = Duration::from_secs(3);
const MIN_INTERVAL: Duration = Duration::from_secs(30);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

fn request(
    t: &Torrent,
    hash: InfoHash,
    event: AnnounceEvent,
    timeout: Duration,
) -> AnnounceRequest {
    let (uploaded, downloaded, left) = {
        let s = t.state();
        (
            s.uploaded,
            s.downloaded,
            t.meta.total_length - s.pieces.bytes_have(),
        )
    };
    AnnounceRequest {
        info_hash: hash.0,
        peer_id: t.env.peer_id,
        port: t.env.listen_addr.port(),
        uploaded,
        downloaded,
        left,
        event,
        num_want: if event == AnnounceEvent::Stopped {
            0
        } else {
            200
        },
        key: t.announce_key,
        timeout,
        local_ip: t.env.local_ip(),
    }
}

async fn announce_one(
    tracker: Arc<dyn Tracker>,
    req: AnnounceRequest,
) -> Result<AnnounceResponse, crate::plugin::TrackerError> {
    rt::blocking(move || tracker.announce(&req)).await
}

/// When to announce next after a reply: the tracker's interval within our bounds, or its
/// `min interval` when we have no peers. A `min interval` above our maximum is capped (it made
/// `clamp` panic and the tier went silent for good).
fn next_announce(r: &AnnounceResponse, starving: bool) -> Duration {
    let min = r
        .min_interval
        .unwrap_or(MIN_INTERVAL)
        .clamp(MIN_INTERVAL, MAX_INTERVAL);
    if starving {
        min
    } else {
        r.interval.clamp(min, MAX_INTERVAL)
    }
}

/// Starts announcing `t` to its trackers: one task per tier and swarm (a hybrid torrent is
/// announced under its v1 and its v2 info-hash, as libtorrent does), in the torrent's task
/// group.
pub(crate) fn start(t: &Arc<Torrent>) {
    let tiers = t.tiers.lock().map(|x| x.len()).unwrap_or(0);
    for hash in t.meta.swarm_hashes() {
        for tier in 0..tiers {
            let wake = t.source_wake();
            t.tasks.spawn(run_tier(t.clone(), tier, hash, wake));
        }
    }
}

/// Announces on behalf of tier `tier` until the torrent stops, then says `stopped` if it had
/// said `started`; `wake` interrupts the wait (completion, pause, resume).
async fn run_tier(t: Arc<Torrent>, tier: usize, hash: InfoHash, wake: Receiver<()>) {
    let mut event = AnnounceEvent::Started;
    let mut backoff = Duration::from_secs(15);
    let mut was_complete = t.state().complete();
    loop {
        // Paused: say goodbye once, then wait to be resumed.
        while t.phase() == Phase::Paused {
            if event != AnnounceEvent::Started {
                announce_tier_stopped(&t, tier, hash).await;
                event = AnnounceEvent::Started;
            }
            if let Either::Right(()) = rt::race(wake.recv(), t.stopped.cancelled()).await {
                return;
            }
        }
        let trackers: Vec<Arc<dyn Tracker>> = t
            .tiers
            .lock()
            .map(|tiers| tiers[tier].clone())
            .unwrap_or_default();
        let mut wait = None;
        for (i, tr) in trackers.iter().enumerate() {
            let req = request(&t, hash, event, ANNOUNCE_TIMEOUT);
            match announce_one(tr.clone(), req).await {
                Ok(r) => {
                    t.events.emit(Event::TrackerReply {
                        url: tr.url().to_string(),
                        peers: r.peers.len(),
                        interval_s: r.interval.as_secs(),
                    });
                    tracing::debug!("{}: {} peers", tr.url(), r.peers.len());
                    if let Some(w) = &r.warning {
                        tracing::warn!("tracker {} warns: {w}", tr.url());
                    }
                    t.add_peers(PeerSource::Tracker, &r.peers);
                    if let Ok(mut tiers) = t.tiers.lock() {
                        let moved = tiers[tier].remove(i);
                        tiers[tier].insert(0, moved);
                    }
                    let starving = {
                        let s = t.state();
                        s.swarm.peers.is_empty() && !s.complete()
                    };
                    wait = Some(next_announce(&r, starving));
                    backoff = Duration::from_secs(15);
                    event = AnnounceEvent::None;
                    break;
                }
                Err(e) => {
                    tracing::warn!("tracker {}: {e}", tr.url());
                    t.events.emit(Event::TrackerError {
                        url: tr.url().to_string(),
                        error: e.to_string(),
                    });
                }
            }
        }
        let wait = wait.unwrap_or_else(|| {
            let b = backoff;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            b
        });
        // Sleep until the interval passes, something wakes the tier, or the torrent stops.
        let woke = rt::race(t.stopped.cancelled(), rt::timeout(wait, wake.recv())).await;
        if let Either::Left(()) = woke {
            if event != AnnounceEvent::Started {
                announce_tier_stopped(&t, tier, hash).await;
            }
            return;
        }
        let complete = t.state().complete();
        if complete && !was_complete {
            event = AnnounceEvent::Completed;
            was_complete = true;
        }
    }
}

/// Tells the first tracker of `tier` that we leave.
async fn announce_tier_stopped(t: &Arc<Torrent>, tier: usize, hash: InfoHash) {
    let first = t
        .tiers
        .lock()
        .ok()
        .and_then(|tiers| tiers.get(tier).and_then(|x| x.first().cloned()));
    if let Some(tr) = first {
        let req = request(t, hash, AnnounceEvent::Stopped, STOPPED_TIMEOUT);
        let _ = rt::timeout(
            STOPPED_TIMEOUT + Duration::from_secs(1),
            announce_one(tr, req),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(interval: u64, min: Option<u64>) -> AnnounceResponse {
        AnnounceResponse {
            interval: Duration::from_secs(interval),
            min_interval: min.map(Duration::from_secs),
            peers: Vec::new(),
            seeders: None,
            leechers: None,
            warning: None,
        }
    }

    #[test]
    fn a_min_interval_above_the_maximum_is_capped_not_a_panic() {
        assert_eq!(next_announce(&reply(1800, Some(7200)), false), MAX_INTERVAL);
        assert_eq!(next_announce(&reply(1800, Some(7200)), true), MAX_INTERVAL);
        assert_eq!(next_announce(&reply(10, None), false), MIN_INTERVAL);
        assert_eq!(
            next_announce(&reply(900, Some(60)), true),
            Duration::from_secs(60)
        );
    }
}
