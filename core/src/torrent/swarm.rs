//! The torrent's peers: who is connected, who we could dial (and when), who is banned.
//!
//! Owns the peer table and the candidate list; knows nothing of pieces. Both are bounded: a
//! tracker handing out fresh addresses grew an unbounded candidate table to 800k entries
//! (165 MB, CPU rising with every tick) before [`MAX_CANDIDATES`].

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::peers::PeerState;
use crate::plugin::PeerKey;

/// Addresses kept to dial. libtorrent keeps 3,000 by default; a torrent connects to at most
/// `max_peers` of them at once.
pub(crate) const MAX_CANDIDATES: usize = 2000;
/// A peer that has moved no data this long may make room for a newcomer when every slot is
/// taken...
const IDLE_EVICT: Duration = Duration::from_secs(60);
/// ... once it has been connected this long (time to get unchoked and start).
const EVICT_GRACE: Duration = Duration::from_secs(10);
/// First retry of a peer whose dial failed; doubles per failure up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(300);
/// A peer we dropped (or that left) is tried again after this.
const REDIAL_AFTER: Duration = Duration::from_secs(10);
/// A candidate that failed this often in a row is forgotten when room is needed.
const FORGET_AFTER_FAILS: u32 = 3;

/// Where a peer address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerSource {
    Tracker,
    /// `--peer` on the command line or the session API.
    Manual,
    Incoming,
    /// `get_peers` on the DHT (BEP 5).
    Dht,
    /// `x.pe` in a magnet link.
    Magnet,
    /// A connected peer's ut_pex message (BEP 11).
    Pex,
}

/// Where to dial next.
#[derive(Debug)]
pub(crate) struct Candidate {
    pub next_try: Instant,
    pub fails: u32,
    pub connecting: bool,
    pub source: PeerSource,
    /// Ever connected: proven peers are kept over unproven ones when the table is full.
    pub proven: bool,
    /// Had every piece when it was last connected: not redialed while we are complete too
    /// (a finished mount redialed its seeders every 3-11 s, each connection ending at once).
    pub seed: bool,
}

#[derive(Default)]
pub(crate) struct Swarm {
    pub peers: HashMap<PeerKey, PeerState>,
    free_keys: Vec<PeerKey>,
    next_key: PeerKey,
    pub known: HashMap<SocketAddr, Candidate>,
    pub self_addrs: HashSet<SocketAddr>,
    pub banned: HashSet<IpAddr>,
    /// Hash-failure strikes per address.
    pub strikes: HashMap<SocketAddr, u32>,
}

impl Swarm {
    pub fn is_connected(&self, addr: SocketAddr) -> bool {
        self.peers.values().any(|p| p.addr == addr)
    }

    pub fn is_connected_id(&self, id: &[u8; 20]) -> bool {
        self.peers.values().any(|p| &p.peer_id == id)
    }

    pub fn get(&self, key: PeerKey, conn: u64) -> Option<&PeerState> {
        self.peers.get(&key).filter(|p| p.conn == conn)
    }

    pub fn get_mut(&mut self, key: PeerKey, conn: u64) -> Option<&mut PeerState> {
        self.peers.get_mut(&key).filter(|p| p.conn == conn)
    }

    /// Registers a handshaken connection under a fresh key.
    pub fn insert(&mut self, peer: PeerState) -> PeerKey {
        let key = self.free_keys.pop().unwrap_or_else(|| {
            self.next_key += 1;
            self.next_key - 1
        });
        if let Some(c) = self.known.get_mut(&peer.addr) {
            c.fails = 0;
            c.proven = true;
        }
        self.peers.insert(key, peer);
        key
    }

    /// Takes a peer out of the table; its key may be reused.
    pub fn remove(&mut self, key: PeerKey) -> Option<PeerState> {
        let peer = self.peers.remove(&key)?;
        self.free_keys.push(key);
        if let Some(c) = self.known.get_mut(&peer.addr) {
            c.connecting = false;
            c.next_try = Instant::now() + REDIAL_AFTER;
            c.seed = peer.has.is_full();
        }
        Some(peer)
    }

    /// The peer to drop so a newcomer fits when all `max_peers` slots are taken: the one that
    /// has gone longest without moving data, if it may be evicted at all. `None` with a free
    /// slot or nobody to evict; see [`Swarm::has_room`].
    pub fn eviction_victim(&self, now: Instant) -> Option<PeerKey> {
        self.peers
            .iter()
            .filter(|(_, p)| p.evictable(now, IDLE_EVICT, EVICT_GRACE))
            .min_by_key(|(_, p)| p.last_data)
            .map(|(k, _)| *k)
    }

    /// Adds addresses to dial; returns how many were new. When the table is full, candidates
    /// that keep failing make room, then unproven ones nobody is dialing; past that, new
    /// addresses are dropped (the ones we know are no worse).
    pub fn add_candidates(
        &mut self,
        source: PeerSource,
        addrs: &[SocketAddr],
        listen: SocketAddr,
    ) -> usize {
        let now = Instant::now();
        let mut added = 0;
        for &a in addrs {
            if a == listen
                || a.port() == 0
                || self.self_addrs.contains(&a)
                || self.known.contains_key(&a)
                || self.banned.contains(&a.ip())
            {
                continue;
            }
            if self.known.len() >= MAX_CANDIDATES && !self.forget_one() {
                break;
            }
            self.known.insert(
                a,
                Candidate {
                    next_try: now,
                    fails: 0,
                    connecting: false,
                    source,
                    proven: false,
                    seed: false,
                },
            );
            added += 1;
        }
        added
    }

    /// Forgets the least promising idle candidate; false if every one is worth keeping.
    fn forget_one(&mut self) -> bool {
        let worst = self
            .known
            .iter()
            .filter(|(a, c)| !c.connecting && !c.proven && !self.is_connected(**a))
            .filter(|(_, c)| c.fails >= FORGET_AFTER_FAILS || c.source != PeerSource::Manual)
            .max_by_key(|(_, c)| c.fails)
            .map(|(a, _)| *a);
        match worst {
            Some(a) => {
                self.known.remove(&a);
                true
            }
            None => false,
        }
    }

    /// Up to `room` addresses due for a dial, marked as being dialed; known seeds are left
    /// out when `complete` (we are one too: neither has anything for the other).
    pub fn due(&mut self, room: usize, now: Instant, complete: bool) -> Vec<SocketAddr> {
        let mut pick: Vec<SocketAddr> = self
            .known
            .iter()
            .filter(|(a, c)| !c.connecting && c.next_try <= now && !self.banned.contains(&a.ip()))
            .filter(|(_, c)| !(complete && c.seed))
            .map(|(a, _)| *a)
            .filter(|a| !self.is_connected(*a))
            .take(room)
            .collect();
        pick.truncate(room);
        for a in &pick {
            if let Some(c) = self.known.get_mut(a) {
                c.connecting = true;
            }
        }
        pick
    }

    pub fn connecting(&self) -> usize {
        self.known.values().filter(|c| c.connecting).count()
    }

    /// A dial of `addr` failed: retry after a backoff that starts near a second (a `--peer`
    /// that is not listening yet is usually up a moment later) and doubles per failure.
    pub fn dial_failed(&mut self, addr: SocketAddr, self_connection: bool) {
        if self_connection {
            self.self_addrs.insert(addr);
            self.known.remove(&addr);
            return;
        }
        if let Some(c) = self.known.get_mut(&addr) {
            c.connecting = false;
            c.fails += 1;
            let backoff = FIRST_RETRY * (1u32 << (c.fails - 1).min(9));
            c.next_try = Instant::now() + backoff.min(MAX_RETRY);
        }
    }

    /// Peers per source, for the status file.
    pub fn sources(&self) -> HashMap<PeerSource, usize> {
        let mut n = HashMap::new();
        for c in self.known.values() {
            *n.entry(c.source).or_default() += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_candidate_table_stays_bounded_and_keeps_proven_peers() {
        let mut s = Swarm::default();
        let listen: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let proven: SocketAddr = "10.0.0.1:7".parse().unwrap();
        s.add_candidates(PeerSource::Manual, &[proven], listen);
        s.known.get_mut(&proven).unwrap().proven = true;
        for round in 0..5u32 {
            let fresh: Vec<SocketAddr> = (0..1000u32)
                .map(|i| SocketAddr::from(([11, round as u8, (i >> 8) as u8, i as u8], 6881)))
                .collect();
            s.add_candidates(PeerSource::Tracker, &fresh, listen);
            assert!(s.known.len() <= MAX_CANDIDATES);
        }
        assert!(
            s.known.contains_key(&proven),
            "a proven peer is never forgotten"
        );
    }

    #[test]
    fn a_failed_dial_is_retried_after_about_a_second_then_later() {
        let mut s = Swarm::default();
        let a: SocketAddr = "10.0.0.2:7".parse().unwrap();
        s.add_candidates(PeerSource::Manual, &[a], "127.0.0.1:1".parse().unwrap());
        let now = Instant::now();
        assert_eq!(s.due(5, now, false), vec![a]);
        s.dial_failed(a, false);
        let first = s.known[&a].next_try.saturating_duration_since(now);
        assert!(first <= Duration::from_millis(1500), "{first:?}");
        s.known.get_mut(&a).unwrap().connecting = true;
        s.dial_failed(a, false);
        let second = s.known[&a].next_try.saturating_duration_since(now);
        assert!(second > first);
    }

    #[test]
    fn a_seed_is_not_redialed_while_we_are_complete() {
        let mut s = Swarm::default();
        let a: SocketAddr = "10.0.0.3:7".parse().unwrap();
        s.add_candidates(PeerSource::Tracker, &[a], "127.0.0.1:1".parse().unwrap());
        s.known.get_mut(&a).unwrap().seed = true;
        let later = Instant::now() + REDIAL_AFTER;
        assert!(s.due(5, later, true).is_empty());
        assert_eq!(
            s.due(5, later, false),
            vec![a],
            "redialed once we miss pieces again"
        );
    }
}
