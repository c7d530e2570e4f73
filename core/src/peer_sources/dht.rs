//! The DHT as a peer source: for a public torrent, `get_peers` on the session's node at once and
//! then every few minutes, each batch of addresses handed to the swarm as it arrives, followed by
//! `announce_peer` with our TCP port. Never for a private torrent (BEP 27: its peers come from
//! its trackers only). A magnet link's info-hash is looked up the same way while its metadata
//! is fetched, so a link with no tracker at all finds its swarm.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mainline::Id;
use mainline::async_dht::AsyncDht;

use super::dht_node::{DhtNode, guarded};
use crate::events::Event;
use crate::metainfo::InfoHash;
use crate::rt::{self, Cancel, Either, Receiver};
use crate::torrent::{PeerSource, Phase, Torrent};

/// Between lookups while we have peers. libtorrent re-announces every 15 minutes; peers found
/// through trackers or PEX keep a healthy swarm in between.
const INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Between lookups while we have no peer and lack pieces.
const STARVING_INTERVAL: Duration = Duration::from_secs(30);
/// A lookup that has not finished by then is cut short (each unanswered node costs the crate
/// its 2 s request timeout; a lookup on a healthy DHT takes a few seconds).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(60);
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts looking `t` up on the session's DHT node, unless it is private.
pub(crate) fn start(t: &Arc<Torrent>, node: Arc<DhtNode>) {
    if t.meta.private {
        return;
    }
    // A hybrid torrent is in two swarms: its v1 and its (truncated) v2 info-hash.
    for hash in t.meta.swarm_hashes() {
        let wake = t.source_wake();
        t.tasks.spawn(run(t.clone(), node.clone(), hash, wake));
    }
}

async fn run(t: Arc<Torrent>, node: Arc<DhtNode>, hash: InfoHash, wake: Receiver<()>) {
    let Some(dht) = node.wait(&t.stopped).await else {
        return;
    };
    let info_hash = Id::from(hash.0);
    loop {
        // Paused, or done and not seeding: nothing to look up or announce until that changes.
        while t.phase() == Phase::Paused || (t.state().complete() && !t.cfg.seed) {
            if let Either::Right(()) = rt::race(wake.recv(), t.stopped.cancelled()).await {
                return;
            }
        }
        let batch = |addrs: &[SocketAddr]| {
            t.events.emit(Event::DhtPeers { peers: addrs.len() });
            t.add_peers(PeerSource::Dht, addrs);
        };
        let lookup = rt::race(t.stopped.cancelled(), lookup(&dht, info_hash, batch)).await;
        let Either::Right(found) = lookup else { return };
        let Some(found) = found else { return };
        tracing::debug!("DHT lookup: {found} peers for {}", t.meta.name);
        // After the lookup: the crate announces to the closest nodes it just met, with the
        // tokens they gave.
        let port = t.env.listen_addr.port();
        let announce = rt::timeout(
            ANNOUNCE_TIMEOUT,
            guarded(dht.announce_peer(info_hash, Some(port))),
        );
        match rt::race(t.stopped.cancelled(), announce).await {
            Either::Left(()) => return,
            Either::Right(Ok(None)) => return,
            Either::Right(Ok(Some(Err(e)))) => tracing::debug!("DHT announce: {e}"),
            Either::Right(Ok(Some(Ok(_)))) => tracing::debug!("DHT announce done"),
            Either::Right(Err(_)) => tracing::debug!("DHT announce timed out"),
        }
        let starving = {
            let s = t.state();
            s.swarm.peers.is_empty() && !s.complete()
        };
        let wait = if starving {
            STARVING_INTERVAL
        } else {
            INTERVAL
        };
        let woke = rt::race(t.stopped.cancelled(), rt::timeout(wait, wake.recv())).await;
        if let Either::Left(()) = woke {
            return;
        }
    }
}

/// Looks a magnet link's info-hash up again and again (at once, then every
/// [`STARVING_INTERVAL`]) while its metadata is fetched, handing each batch of peers to `feed`;
/// never returns while the node lives (the caller drops it once the metadata is in).
pub(crate) async fn find_for_metadata(
    node: &DhtNode,
    info_hash: InfoHash,
    stopped: &Cancel,
    mut feed: impl FnMut(&[SocketAddr]),
) {
    if let Some(dht) = node.wait(stopped).await {
        let id = Id::from(info_hash.0);
        while lookup(&dht, id, &mut feed).await.is_some() {
            rt::sleep(STARVING_INTERVAL).await;
        }
    }
    std::future::pending::<()>().await;
}

/// One `get_peers` lookup for `info_hash`, handing every node's batch of peers to `batch` as
/// it arrives (a download may be done before the slowest node answers); how many addresses it
/// found, or `None` if the node is gone. Needs nothing of a torrent but its info-hash, so a
/// magnet link's peers can be found before its metadata.
pub(crate) async fn lookup(
    dht: &AsyncDht,
    info_hash: Id,
    mut batch: impl FnMut(&[SocketAddr]),
) -> Option<usize> {
    let mut stream =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dht.get_peers(info_hash))).ok()?;
    let mut found = 0;
    let collect = async {
        while let Some(peers) = stream.next().await {
            let addrs: Vec<SocketAddr> = peers.into_iter().map(SocketAddr::V4).collect();
            found += addrs.len();
            batch(&addrs);
        }
    };
    let _ = rt::timeout(LOOKUP_TIMEOUT, collect).await;
    Some(found)
}
