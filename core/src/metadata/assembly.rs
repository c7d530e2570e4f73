//! The info dictionary being put together from 16 KiB ut_metadata pieces, and who is to blame
//! when the whole does not hash to the info-hash.
//!
//! Blame follows the torrent's rule for pieces (STATE.md): a copy from one sender that fails
//! bans that sender; a copy from several is kept, and everything is fetched again from one
//! peer; when that copy verifies, the senders of the pieces that differ are banned. The size
//! is taken from the first peer that offers the metadata and dropped with a copy that fails,
//! so a peer lying about the size costs one attempt.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::wire::ut_metadata::{METADATA_PIECE, piece_count};

/// A request unanswered this long goes to another peer.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One received piece and who sent it.
#[derive(Clone, Debug)]
struct Received {
    data: Vec<u8>,
    addr: SocketAddr,
}

/// A peer broke the exchange: drop it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    WrongSize,
    Unrequested,
}

/// What hashing a complete copy decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The metadata, and the senders a failed earlier copy now proves lied.
    Verified {
        info: Vec<u8>,
        liars: Vec<SocketAddr>,
    },
    /// Wrong; these senders are banned (empty when nobody can be blamed yet).
    Failed { liars: Vec<SocketAddr> },
}

#[derive(Default)]
pub(crate) struct MetadataAssembly {
    size: Option<u64>,
    pieces: Vec<Option<Received>>,
    /// Outstanding requests: piece → (connection, when).
    requested: HashMap<u32, (u64, Instant)>,
    /// After a copy from several senders failed, one connection sends everything.
    single_source: bool,
    owner: Option<u64>,
    failed_copy: Option<Vec<Option<Received>>>,
    /// A complete copy is being hashed: nothing more is requested meanwhile.
    pub verifying: bool,
}

impl MetadataAssembly {
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Takes `size` as the metadata's size unless one is already being fetched.
    pub fn adopt_size(&mut self, size: u64) {
        if self.size.is_none() {
            self.size = Some(size);
            self.pieces = vec![None; piece_count(size) as usize];
        }
    }

    fn piece_len(&self, piece: u32) -> usize {
        let size = self.size.unwrap_or(0) as usize;
        (size - piece as usize * METADATA_PIECE).min(METADATA_PIECE)
    }

    /// Forgets the size and what was received for it (nobody offers that size any more),
    /// unless a copy is being hashed.
    pub fn reset(&mut self) {
        if !self.verifying {
            self.size = None;
            self.pieces.clear();
            self.requested.clear();
        }
    }

    /// The next piece to ask `conn` for, marked as requested.
    pub fn next_request(&mut self, conn: u64, now: Instant) -> Option<u32> {
        if self.verifying || self.size.is_none() {
            return None;
        }
        if self.single_source {
            match self.owner {
                Some(o) if o != conn => return None,
                None => self.owner = Some(conn),
                _ => {}
            }
        }
        let piece = (0..self.pieces.len() as u32)
            .find(|p| self.pieces[*p as usize].is_none() && !self.requested.contains_key(p))?;
        self.requested.insert(piece, (conn, now));
        Some(piece)
    }

    pub fn in_flight(&self, conn: u64) -> usize {
        self.requested.values().filter(|(c, _)| *c == conn).count()
    }

    /// A data message from `conn`; returns the whole copy once every piece is in.
    pub fn on_data(
        &mut self,
        conn: u64,
        addr: SocketAddr,
        piece: u32,
        total_size: u64,
        data: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, Fault> {
        if self.requested.get(&piece).map(|r| r.0) != Some(conn) {
            return Err(Fault::Unrequested);
        }
        if Some(total_size) != self.size || data.len() != self.piece_len(piece) {
            return Err(Fault::WrongSize);
        }
        self.requested.remove(&piece);
        self.pieces[piece as usize] = Some(Received { data, addr });
        if self.pieces.iter().any(Option::is_none) {
            return Ok(None);
        }
        self.verifying = true;
        let mut whole = Vec::with_capacity(self.size.unwrap_or(0) as usize);
        for p in self.pieces.iter().flatten() {
            whole.extend_from_slice(&p.data);
        }
        Ok(Some(whole))
    }

    /// `conn` refused a piece or is gone: its requests go to others.
    pub fn release_conn(&mut self, conn: u64) {
        self.requested.retain(|_, (c, _)| *c != conn);
        if self.owner == Some(conn) {
            self.owner = None;
        }
    }

    pub fn release_piece(&mut self, conn: u64, piece: u32) {
        if self.requested.get(&piece).map(|r| r.0) == Some(conn) {
            self.requested.remove(&piece);
        }
    }

    /// Withdraws requests older than [`REQUEST_TIMEOUT`]; returns the connections that let
    /// them lapse.
    pub fn timeouts(&mut self, now: Instant) -> Vec<u64> {
        expire(&mut self.requested, now, REQUEST_TIMEOUT)
    }

    /// The complete copy hashed `ok` or not.
    pub fn verified(&mut self, ok: bool, whole: Vec<u8>) -> Verdict {
        self.verifying = false;
        let copy = std::mem::take(&mut self.pieces);
        let mut senders: Vec<SocketAddr> = copy.iter().flatten().map(|p| p.addr).collect();
        senders.sort();
        senders.dedup();
        if ok {
            let liars = match self.failed_copy.take() {
                Some(failed) => differing_senders(&failed, &copy),
                None => Vec::new(),
            };
            return Verdict::Verified { info: whole, liars };
        }
        self.requested.clear();
        self.size = None;
        self.owner = None;
        if senders.len() == 1 {
            return Verdict::Failed { liars: senders };
        }
        // Several senders: keep the copy to compare with one fetched from a single peer.
        self.failed_copy = Some(copy);
        self.single_source = true;
        Verdict::Failed { liars: Vec::new() }
    }
}

/// Senders of pieces of `failed` that differ from the verified copy `good`.
fn differing_senders(failed: &[Option<Received>], good: &[Option<Received>]) -> Vec<SocketAddr> {
    let mut liars: Vec<SocketAddr> = failed
        .iter()
        .zip(good)
        .filter_map(|(f, g)| match (f, g) {
            (Some(f), Some(g)) if f.data != g.data => Some(f.addr),
            (Some(f), None) => Some(f.addr),
            _ => None,
        })
        .collect();
    if failed.len() != good.len() {
        liars.extend(failed.iter().flatten().map(|f| f.addr));
    }
    liars.sort();
    liars.dedup();
    liars
}

/// Drops the requests of `in_flight` (each with its connection and when it was sent) older than
/// `timeout`; returns the connections that let them lapse.
pub(super) fn expire<K>(
    in_flight: &mut HashMap<K, (u64, Instant)>,
    now: Instant,
    timeout: Duration,
) -> Vec<u64> {
    let mut late = Vec::new();
    in_flight.retain(|_, (c, sent)| {
        let keep = now.saturating_duration_since(*sent) < timeout;
        if !keep {
            late.push(*c);
        }
        keep
    });
    late
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, n], 6881))
    }

    #[test]
    fn a_copy_from_one_liar_bans_it_and_forgets_its_size() {
        let mut a = MetadataAssembly::default();
        a.adopt_size(20000);
        let now = Instant::now();
        assert_eq!(a.next_request(1, now), Some(0));
        assert_eq!(a.next_request(1, now), Some(1));
        assert_eq!(a.next_request(1, now), None);
        assert_eq!(a.on_data(1, addr(1), 0, 20000, vec![0; 16384]), Ok(None));
        assert_eq!(
            a.on_data(1, addr(1), 1, 20000, vec![0; 5]),
            Err(Fault::WrongSize)
        );
        let whole = a
            .on_data(1, addr(1), 1, 20000, vec![0; 3616])
            .unwrap()
            .unwrap();
        assert_eq!(whole.len(), 20000);
        assert_eq!(
            a.verified(false, whole),
            Verdict::Failed {
                liars: vec![addr(1)]
            }
        );
        assert_eq!(a.size(), None);
        a.adopt_size(100);
        assert_eq!(a.next_request(2, now), Some(0));
    }

    #[test]
    fn a_failed_copy_from_several_is_refetched_from_one_and_the_liar_found() {
        let mut a = MetadataAssembly::default();
        a.adopt_size(20000);
        let now = Instant::now();
        assert_eq!(a.next_request(1, now), Some(0));
        assert_eq!(a.next_request(2, now), Some(1));
        assert_eq!(
            a.on_data(2, addr(2), 0, 20000, vec![0; 16384]),
            Err(Fault::Unrequested)
        );
        a.on_data(1, addr(1), 0, 20000, vec![1; 16384]).unwrap();
        let whole = a
            .on_data(2, addr(2), 1, 20000, vec![9; 3616])
            .unwrap()
            .unwrap();
        assert_eq!(a.verified(false, whole), Verdict::Failed { liars: vec![] });
        a.adopt_size(20000);
        assert_eq!(a.next_request(1, now), Some(0));
        assert_eq!(
            a.next_request(2, now),
            None,
            "one peer sends everything now"
        );
        assert_eq!(a.next_request(1, now), Some(1));
        a.on_data(1, addr(1), 0, 20000, vec![1; 16384]).unwrap();
        let whole = a
            .on_data(1, addr(1), 1, 20000, vec![1; 3616])
            .unwrap()
            .unwrap();
        match a.verified(true, whole) {
            Verdict::Verified { info, liars } => {
                assert_eq!(info.len(), 20000);
                assert_eq!(liars, vec![addr(2)]);
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn lapsed_requests_go_back() {
        let mut a = MetadataAssembly::default();
        a.adopt_size(10);
        let now = Instant::now();
        assert_eq!(a.next_request(1, now), Some(0));
        assert!(a.timeouts(now).is_empty());
        assert_eq!(a.timeouts(now + REQUEST_TIMEOUT), vec![1]);
        assert_eq!(a.next_request(2, now), Some(0));
    }
}
