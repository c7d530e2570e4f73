//! Talking to trackers: one task per BEP 12 tier, announcing on the tracker's interval.
//!
//! Within a tier trackers are tried in order and the one that answers moves to the front. A
//! dead tracker only costs its own tier a backoff; the torrent goes on with the others.

use std::sync::Arc;
use std::time::Duration;

use super::engine::Engine;
use crate::events::Event;
use crate::plugin::{AnnounceEvent, AnnounceRequest, AnnounceResponse, Tracker};

const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(15);
const STOPPED_TIMEOUT: Duration = Duration::from_secs(3);
const MIN_INTERVAL: Duration = Duration::from_secs(30);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

fn request(engine: &Engine, event: AnnounceEvent, timeout: Duration) -> AnnounceRequest {
    let st = engine.stats();
    AnnounceRequest {
        info_hash: engine.meta.info_hash.0,
        peer_id: engine.peer_id,
        port: engine.listen_addr.port(),
        uploaded: st.uploaded,
        downloaded: st.downloaded,
        left: st.bytes_total - st.bytes_have,
        event,
        num_want: if event == AnnounceEvent::Stopped {
            0
        } else {
            200
        },
        key: engine.announce_key,
        timeout,
    }
}

async fn announce_one(
    tracker: Arc<dyn Tracker>,
    req: AnnounceRequest,
) -> Result<AnnounceResponse, crate::plugin::TrackerError> {
    async_std::task::spawn_blocking(move || tracker.announce(&req)).await
}

/// Announces on behalf of tier `tier` until the engine stops.
pub(crate) async fn run_tier(engine: Arc<Engine>, tier: usize) {
    let mut event = AnnounceEvent::Started;
    let mut backoff = Duration::from_secs(15);
    let mut was_complete = engine.stats().complete;
    loop {
        let trackers: Vec<Arc<dyn Tracker>> = engine
            .tiers
            .lock()
            .map(|t| t[tier].clone())
            .unwrap_or_default();
        let mut wait = None;
        for (i, t) in trackers.iter().enumerate() {
            let req = request(&engine, event, ANNOUNCE_TIMEOUT);
            match announce_one(t.clone(), req).await {
                Ok(r) => {
                    engine.events.emit(Event::TrackerReply {
                        url: t.url().to_string(),
                        peers: r.peers.len(),
                        interval_s: r.interval.as_secs(),
                    });
                    tracing::debug!("{}: {} peers", t.url(), r.peers.len());
                    if let Some(w) = &r.warning {
                        tracing::warn!("tracker {} warns: {w}", t.url());
                    }
                    engine.add_candidates(&r.peers);
                    if let Ok(mut tiers) = engine.tiers.lock() {
                        let moved = tiers[tier].remove(i);
                        tiers[tier].insert(0, moved);
                    }
                    let min = r.min_interval.unwrap_or(MIN_INTERVAL).max(MIN_INTERVAL);
                    let mut interval = r.interval.clamp(min, MAX_INTERVAL);
                    // Starving: ask again as soon as the tracker allows.
                    let st = engine.stats();
                    if st.peers == 0 && !st.complete {
                        interval = min;
                    }
                    wait = Some(interval);
                    backoff = Duration::from_secs(15);
                    event = AnnounceEvent::None;
                    break;
                }
                Err(e) => {
                    tracing::warn!("tracker {}: {e}", t.url());
                    engine.events.emit(Event::TrackerError {
                        url: t.url().to_string(),
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
        // Sleep until the interval passes, the download completes, or the engine stops.
        let woke = futures::future::select(
            Box::pin(engine.stop_rx.recv()),
            Box::pin(async_std::future::timeout(wait, engine.completed_rx.recv())),
        )
        .await;
        if let futures::future::Either::Left(_) = woke {
            return;
        }
        let complete = engine.stats().complete;
        if complete && !was_complete {
            event = AnnounceEvent::Completed;
            was_complete = true;
        }
    }
}

/// Tells the first tracker of every tier that we leave, briefly: a dead tracker must not hold
/// up the exit.
pub(crate) async fn announce_stopped(engine: &Arc<Engine>) {
    let firsts: Vec<Arc<dyn Tracker>> = engine
        .tiers
        .lock()
        .map(|t| t.iter().filter_map(|tier| tier.first().cloned()).collect())
        .unwrap_or_default();
    let calls = firsts.into_iter().map(|t| {
        let req = request(engine, AnnounceEvent::Stopped, STOPPED_TIMEOUT);
        async move {
            let _ = async_std::future::timeout(
                STOPPED_TIMEOUT + Duration::from_secs(1),
                announce_one(t, req),
            )
            .await;
        }
    });
    futures::future::join_all(calls).await;
}
