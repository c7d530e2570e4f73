//! Peer exchange (BEP 11) in the torrent core: peers a neighbour names become candidates, and
//! every neighbour that speaks ut_pex hears about our other peers about once a minute.
//!
//! Never for a private torrent (BEP 27): we neither advertise ut_pex nor send or take a list.
//! Bounded both ways. In: one message per [`MIN_INTERVAL_IN`] per peer (libtorrent sends one a
//! minute; more often is only a peer pushing addresses at us), at most [`MAX_NEW_IN`] new
//! candidates from one message. Out: at most [`MAX_ADDED_OUT`] added and dropped per message,
//! which is libtorrent's own cap.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::TorrentState;
use crate::events::Event;
use crate::plugin::PeerKey;
use crate::torrent::PeerSource;
use crate::torrent::effects::Effects;
use crate::wire::pex::{FLAG_REACHABLE, FLAG_SEED};
use crate::wire::{Message, PexMsg, PexPeer};

/// A peer's next list is taken this long after its last one at the earliest.
pub(super) const MIN_INTERVAL_IN: Duration = Duration::from_secs(45);
/// New candidates taken from one message.
pub(super) const MAX_NEW_IN: usize = 50;
/// Between our lists to a peer (BEP 11: at most one a minute).
pub(super) const INTERVAL_OUT: Duration = Duration::from_secs(60);
/// Our first list goes this long after the peer's extension handshake: the peers we dialled
/// together with it are connected by then.
pub(super) const FIRST_OUT: Duration = Duration::from_secs(2);
/// Added (and dropped) peers per message we send.
pub(super) const MAX_ADDED_OUT: usize = 50;
/// Addresses remembered as told to one peer; past this nothing more is added to it.
const MAX_TOLD: usize = 1000;

/// Peer exchange with one peer.
#[derive(Debug, Default)]
pub(crate) struct PeerPex {
    /// When its last list was taken.
    last_in: Option<Instant>,
    /// When our next list is due; `None` until it says it speaks ut_pex.
    next_out: Option<Instant>,
    /// What we told it is connected, so later lists carry only the changes.
    told: HashSet<SocketAddr>,
}

impl PeerPex {
    /// The peer's extension handshake said it speaks ut_pex: our first list goes soon.
    pub fn start(&mut self, now: Instant) {
        self.next_out.get_or_insert(now + FIRST_OUT);
    }
}

impl TorrentState {
    /// A ut_pex message from peer `key`: its new addresses, filtered and capped, go to the
    /// swarm as PEX candidates (dialled by the runner after the lock). A message too soon
    /// after the last, or one we cannot read, is ignored, never the peer.
    pub(super) fn on_pex(&mut self, key: PeerKey, payload: &[u8], now: Instant, fx: &mut Effects) {
        if self.meta.private {
            return;
        }
        let Some(peer) = self.swarm.peers.get_mut(&key) else {
            return;
        };
        let from = peer.addr;
        let pex = &mut peer.ext.pex;
        if pex
            .last_in
            .is_some_and(|t| now.saturating_duration_since(t) < MIN_INTERVAL_IN)
        {
            tracing::debug!("{from}: ut_pex again within {MIN_INTERVAL_IN:?}, ignored");
            return;
        }
        pex.last_in = Some(now);
        let msg = match PexMsg::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("{from}: {e}");
                return;
            }
        };
        let swarm = &self.swarm;
        let mut fresh: Vec<SocketAddr> = Vec::new();
        for a in msg.added.iter().map(|p| p.addr) {
            if fresh.len() >= MAX_NEW_IN {
                break;
            }
            let skip = a == from
                || a.port() == 0
                || fresh.contains(&a)
                || swarm.known.contains_key(&a)
                || swarm.self_addrs.contains(&a)
                || swarm.banned.contains(&a.ip())
                || swarm.is_connected(a);
            if !skip {
                fresh.push(a);
            }
        }
        // `dropped` is not acted on: the peer left it, not necessarily us, and a candidate
        // that is gone fails its dial and backs off like any other.
        if fresh.is_empty() {
            return;
        }
        fx.emit(Event::PexPeers {
            from: from.to_string(),
            peers: fresh.len(),
        });
        fx.found(PeerSource::Pex, fresh);
    }

    /// Sends each peer that speaks ut_pex, when due, the changes in our other peers' listen
    /// addresses since the last list it got.
    pub fn pex_round(&mut self, now: Instant, fx: &mut Effects) {
        if self.meta.private {
            return;
        }
        // Where each peer can be reached: the address we dialled, or for one that dialled us
        // the port its extension handshake named; others cannot be passed on.
        let reachable: HashMap<PeerKey, PexPeer> = self
            .swarm
            .peers
            .iter()
            .filter_map(|(k, p)| {
                let addr = match (p.incoming, p.ext.listen_port) {
                    (false, _) => p.addr,
                    (true, Some(port)) => SocketAddr::new(p.addr.ip(), port),
                    (true, None) => return None,
                };
                let mut flags = if p.incoming { 0 } else { FLAG_REACHABLE };
                if p.has.is_full() {
                    flags |= FLAG_SEED;
                }
                Some((*k, PexPeer { addr, flags }))
            })
            .collect();
        for (key, peer) in self.swarm.peers.iter_mut() {
            let (Some(id), Some(due)) = (peer.ext.ut_pex, peer.ext.pex.next_out) else {
                continue;
            };
            if now < due {
                continue;
            }
            let pex = &mut peer.ext.pex;
            pex.next_out = Some(now + INTERVAL_OUT);
            let own = reachable.get(key).map(|p| p.addr);
            let current: HashMap<SocketAddr, u8> = reachable
                .iter()
                .filter(|(k, p)| *k != key && Some(p.addr) != own)
                .map(|(_, p)| (p.addr, p.flags))
                .collect();
            let room = MAX_TOLD.saturating_sub(pex.told.len());
            let added: Vec<PexPeer> = current
                .iter()
                .filter(|(a, _)| !pex.told.contains(*a))
                .take(MAX_ADDED_OUT.min(room))
                .map(|(addr, flags)| PexPeer {
                    addr: *addr,
                    flags: *flags,
                })
                .collect();
            let dropped: Vec<SocketAddr> = pex
                .told
                .iter()
                .filter(|a| !current.contains_key(*a))
                .take(MAX_ADDED_OUT)
                .copied()
                .collect();
            if added.is_empty() && dropped.is_empty() {
                continue;
            }
            pex.told.extend(added.iter().map(|p| p.addr));
            for a in &dropped {
                pex.told.remove(a);
            }
            let msg = PexMsg { added, dropped };
            fx.send(
                &peer.tx,
                Message::Extended {
                    id,
                    payload: msg.encode(),
                },
            );
        }
    }
}
