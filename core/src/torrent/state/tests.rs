//! The torrent core with no sockets: messages in, effects out.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use sha1::{Digest, Sha1};

use super::*;
use crate::peer::{Outbound, PeerTx};
use crate::plugin::PiecePicker;
use crate::rt::{self, Receiver};
use crate::torrent::assembly::PieceAssembly;
use crate::torrent::pieces::PieceTracker;
use crate::wire::BLOCK_SIZE;

/// Lowest-numbered piece the peer has and nobody started: deterministic, so the tests can say
/// which piece is asked for.
#[derive(Default)]
struct InOrder {
    taken: HashSet<u32>,
    peers: HashMap<PeerKey, Bitfield>,
    pieces: u32,
}

impl PiecePicker for InOrder {
    fn init(&mut self, pieces: u32, have: &Bitfield) {
        self.pieces = pieces;
        self.taken = have.ones().collect();
    }
    fn peer_bitfield(&mut self, peer: PeerKey, has: &Bitfield) {
        self.peers.insert(peer, has.clone());
    }
    fn peer_have(&mut self, peer: PeerKey, piece: u32) {
        if let Some(b) = self.peers.get_mut(&peer) {
            b.set(piece);
        }
    }
    fn peer_left(&mut self, peer: PeerKey) {
        self.peers.remove(&peer);
    }
    fn piece_verified(&mut self, piece: u32) {
        self.taken.insert(piece);
    }
    fn piece_lost(&mut self, piece: u32) {
        self.taken.remove(&piece);
    }
    fn set_deadline(&mut self, _: u32, _: Option<u64>) {}
    fn pick(&mut self, peer: PeerKey) -> Option<u32> {
        let has = self.peers.get(&peer)?;
        let i = (0..self.pieces).find(|i| has.get(*i) && !self.taken.contains(i))?;
        self.taken.insert(i);
        Some(i)
    }
}

const PIECE: u64 = 2 * BLOCK_SIZE as u64;

/// The content of piece `i`.
fn piece_data(i: u32) -> Vec<u8> {
    (0..PIECE)
        .map(|b| (b as u32 ^ i.wrapping_mul(7)) as u8)
        .collect()
}

fn meta(pieces: u32) -> Arc<Metainfo> {
    let hashes: Vec<u8> = (0..pieces)
        .flat_map(|i| Sha1::digest(piece_data(i)).to_vec())
        .collect();
    let mut info = format!(
        "d6:lengthi{}e4:name1:f12:piece lengthi{PIECE}e6:pieces{}:",
        PIECE * pieces as u64,
        hashes.len()
    )
    .into_bytes();
    info.extend_from_slice(&hashes);
    info.push(b'e');
    let mut t = b"d4:info".to_vec();
    t.extend_from_slice(&info);
    t.push(b'e');
    Arc::new(Metainfo::from_bytes(&t).unwrap())
}

pub(super) fn torrent(pieces: u32, have: Bitfield) -> TorrentState {
    torrent_of(meta(pieces), have)
}

/// A live torrent of `meta` that has the pieces in `have`.
pub(super) fn torrent_of(meta: Arc<Metainfo>, have: Bitfield) -> TorrentState {
    let mut tracker = PieceTracker::new(
        meta.clone(),
        ("in-order".into(), Box::new(InOrder::default())),
        ("fallback".into(), Box::new(InOrder::default())),
    );
    tracker.init(have);
    let mut s = TorrentState::new(meta, tracker, 4);
    s.phase = Phase::Live;
    s
}

/// A connected peer: its key, its connection id and what it was sent.
pub(super) struct Remote {
    pub key: PeerKey,
    pub conn: u64,
    pub addr: SocketAddr,
    pub outbox: Receiver<Outbound>,
}

impl Remote {
    pub fn sent(&self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Ok(o) = self.outbox.try_recv() {
            if let Outbound::Msg(m) = o {
                out.push(m);
            }
        }
        out
    }

    pub fn requests(&self) -> Vec<BlockRequest> {
        self.sent()
            .into_iter()
            .filter_map(|m| match m {
                Message::Request(r) => Some(r),
                _ => None,
            })
            .collect()
    }
}

fn connect(s: &mut TorrentState, n: u8, has: Option<Bitfield>) -> Remote {
    connect_with(s, n, has, false)
}

/// [`connect`] for a peer that did (`fast`) or did not announce the fast extension (BEP 6).
pub(super) fn connect_with(
    s: &mut TorrentState,
    n: u8,
    has: Option<Bitfield>,
    fast: bool,
) -> Remote {
    static CONN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let conn = CONN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let addr: SocketAddr = format!("10.0.0.{n}:6881").parse().unwrap();
    let (tx, outbox) = rt::bounded(crate::peer::OUTBOX_CAP);
    let (close, _closed) = rt::cancel_pair();
    let mut peer = PeerState::new(
        conn,
        addr,
        [n; 20],
        PeerTx { tx, conn },
        close,
        s.pieces.have.len(),
    );
    peer.fast = fast;
    let mut fx = Effects::default();
    let key = s.add_peer(peer, &mut fx);
    let remote = Remote {
        key,
        conn,
        addr,
        outbox,
    };
    deliver(fx);
    if let Some(has) = has {
        let mut fx = Effects::default();
        s.on_message(
            key,
            conn,
            Message::Bitfield(has.as_bytes().to_vec()),
            &mut fx,
        )
        .unwrap();
        s.on_message(key, conn, Message::Unchoke, &mut fx).unwrap();
        deliver(fx);
    }
    remote
}

/// Carries out effects as the runner would (sends land in the peers' outboxes).
pub(super) fn deliver(fx: Effects) -> Vec<PieceAssembly> {
    crate::torrent::effects::carry_out(fx.list, &crate::events::EventSink::disabled());
    fx.verify
}

fn block(r: &BlockRequest) -> Message {
    let data = piece_data(r.piece);
    Message::Piece {
        piece: r.piece,
        offset: r.offset,
        data: data[r.offset as usize..(r.offset + r.len) as usize].to_vec(),
    }
}

pub(super) fn send(
    s: &mut TorrentState,
    p: &Remote,
    m: Message,
) -> (Result<(), DropReason>, Vec<PieceAssembly>) {
    let mut fx = Effects::default();
    let r = s.on_message(p.key, p.conn, m, &mut fx);
    (r, deliver(fx))
}

#[test]
fn an_unchoking_seeder_is_asked_for_blocks_and_a_whole_piece_goes_to_verification() {
    let mut s = torrent(4, Bitfield::new(4));
    let seeder = connect(&mut s, 1, Some(Bitfield::full(4)));
    let sent = seeder.sent();
    assert!(sent.contains(&Message::Interested), "{sent:?}");
    let reqs: Vec<BlockRequest> = sent
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(reqs.len(), 8, "two blocks of each of the four pieces");
    let piece0: Vec<_> = reqs.iter().filter(|r| r.piece == 0).collect();
    let (_, none) = send(&mut s, &seeder, block(piece0[0]));
    assert!(none.is_empty());
    let (r, done) = send(&mut s, &seeder, block(piece0[1]));
    r.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].index, 0);
    let mut fx = Effects::default();
    s.piece_verified(&done[0], &mut fx);
    assert!(s.pieces.have.get(0));
    assert!(
        fx.events()
            .iter()
            .any(|e| matches!(e, Event::PieceVerified { piece: 0 }))
    );
}

#[test]
fn late_blocks_of_withdrawn_requests_are_used_and_never_count_against_the_peer() {
    let pieces = 256;
    let mut s = torrent(pieces, Bitfield::new(pieces));
    let slow = connect(&mut s, 1, Some(Bitfield::full(pieces)));
    let mut late = 0;
    // Rounds of: requests sent, the peer chokes (we withdraw them), then answers them anyway.
    while late <= MAX_UNREQUESTED + 16 {
        let reqs = slow.requests();
        assert!(!reqs.is_empty());
        send(&mut s, &slow, Message::Choke).0.unwrap();
        for r in &reqs {
            assert_eq!(send(&mut s, &slow, block(r)).0, Ok(()));
            late += 1;
        }
        send(&mut s, &slow, Message::Unchoke).0.unwrap();
    }
    assert_eq!(s.swarm.peers[&slow.key].unrequested, 0);
    assert!(
        s.downloaded >= late as u64 * BLOCK_SIZE as u64,
        "late blocks are used"
    );
}

#[test]
fn blocks_nobody_asked_for_are_not_counted_as_downloaded_and_the_sender_is_dropped() {
    let mut s = torrent(2, Bitfield::full(2));
    let flooder = connect(&mut s, 9, None);
    let r = BlockRequest {
        piece: 1,
        offset: 0,
        len: BLOCK_SIZE,
    };
    let mut dropped = None;
    for i in 0..=MAX_UNREQUESTED {
        if let (Err(e), _) = send(&mut s, &flooder, block(&r)) {
            dropped = Some((i, e));
            break;
        }
    }
    assert_eq!(
        dropped,
        Some((MAX_UNREQUESTED, DropReason::UnrequestedBlocks))
    );
    assert_eq!(s.downloaded, 0, "unasked blocks are not downloaded bytes");
}

#[test]
fn liars_are_banned_by_the_good_copy_and_the_honest_seeder_is_not() {
    let mut s = torrent(1, Bitfield::new(1));
    let liar = connect(&mut s, 1, Some(Bitfield::full(1)));
    let honest = connect(&mut s, 2, Some(Bitfield::full(1)));
    // Both were asked; arrange that the liar answers block 0 (wrong) and the honest block 1.
    let liar_reqs = liar.requests();
    let honest_reqs = honest.requests();
    let to_liar = liar_reqs.iter().find(|r| r.offset == 0).copied();
    let to_honest = honest_reqs.iter().find(|r| r.offset == BLOCK_SIZE).copied();
    let (first, second) = match (to_liar, to_honest) {
        (Some(a), Some(b)) => (a, b),
        // The pipeline gave both blocks to the liar (endgame had nothing left for the other).
        _ => (liar_reqs[0], liar_reqs[1]),
    };
    let mut bad = block(&first);
    if let Message::Piece { data, .. } = &mut bad {
        data[0] ^= 0xff;
    }
    send(&mut s, &liar, bad).0.unwrap();
    let who = if to_honest.is_some() { &honest } else { &liar };
    let (_, done) = send(&mut s, who, block(&second));
    let failed = done.into_iter().next().expect("piece complete");
    let mut fx = Effects::default();
    s.piece_failed(failed, &mut fx);
    deliver(fx);
    if to_honest.is_none() {
        // One sender only: it is to blame, nobody else.
        assert_eq!(
            s.swarm.strikes.get(&liar.addr),
            Some(&crate::torrent::pieces::SOLE_FAILURE_STRIKES)
        );
        return;
    }
    assert!(s.swarm.strikes.is_empty(), "no blame before the good copy");
    // The piece is fetched again, whole, from one peer only.
    let (liar_asked, honest_asked) = (liar.requests(), honest.requests());
    assert!(
        (liar_asked.len(), honest_asked.len()) == (2, 0)
            || (liar_asked.len(), honest_asked.len()) == (0, 2),
        "{liar_asked:?} {honest_asked:?}"
    );
    let again = if honest_asked.is_empty() {
        // The liar got the re-fetch; it leaves, and the reserved piece goes to the other.
        let mut fx = Effects::default();
        s.remove_conn(liar.key, liar.conn, DropReason::Gone, &mut fx);
        deliver(fx);
        honest.requests()
    } else {
        honest_asked
    };
    assert_eq!(again.len(), 2, "the whole piece from the honest peer");
    let mut done = Vec::new();
    for r in &again {
        done.extend(send(&mut s, &honest, block(r)).1);
    }
    let mut fx = Effects::default();
    s.piece_verified(&done[0], &mut fx);
    deliver(fx);
    assert!(
        s.swarm.banned.contains(&liar.addr.ip()),
        "the liar is banned"
    );
    assert!(!s.swarm.banned.contains(&honest.addr.ip()));
    assert!(!s.swarm.strikes.contains_key(&honest.addr));
}

#[test]
fn a_keep_alive_flood_drops_the_peer() {
    let mut s = torrent(1, Bitfield::new(1));
    let flooder = connect(&mut s, 3, None);
    let mut result = Ok(());
    for _ in 0..100_000 {
        result = send(&mut s, &flooder, Message::KeepAlive).0;
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(DropReason::MessageFlood("keep-alive")));
}

#[test]
fn unfinished_pieces_are_bounded_per_peer_and_released_when_only_a_gone_peer_had_them() {
    let pieces = 4096;
    let mut s = torrent(pieces, Bitfield::new(pieces));
    let withholder = connect(&mut s, 4, Some(Bitfield::full(pieces)));
    let started = s.pieces.assemblies.len();
    // A 16-block pipeline of 2-block pieces: its pieces plus a little slack, never thousands.
    assert!(started <= 16 / 2 + 2, "{started} pieces started");
    // It answers every block but the last of each piece, then asks for more room.
    for r in withholder.requests() {
        if r.offset == 0 {
            send(&mut s, &withholder, block(&r)).0.unwrap();
        }
    }
    assert!(s.pieces.assemblies.len() <= 16 / 2 + 2 + 8);
    let held = s.pieces.partial_bytes();
    assert!(held > 0);
    let mut fx = Effects::default();
    s.remove_conn(withholder.key, withholder.conn, DropReason::Gone, &mut fx);
    assert_eq!(s.pieces.assemblies.len(), 0, "nobody else can finish them");
    assert_eq!(s.pieces.partial_bytes(), 0);
}

#[test]
fn a_full_outbox_is_reported_so_the_peer_can_be_dropped() {
    let (tx, _rx) = rt::bounded(2);
    let peer = PeerTx { tx, conn: 77 };
    let mut fx = Effects::default();
    for _ in 0..3 {
        fx.send(&peer, Message::Interested);
    }
    let out = crate::torrent::effects::carry_out(fx.list, &crate::events::EventSink::disabled());
    assert_eq!(out.overflowed.len(), 1);
    assert!(out.overflowed[0].same(&peer));
}

#[test]
fn a_storage_failure_stops_fetching_and_wakes_waiting_reads_until_the_retry() {
    let mut s = torrent(2, Bitfield::new(2));
    let seeder = connect(&mut s, 5, Some(Bitfield::full(2)));
    let reqs = seeder.requests();
    assert!(!reqs.is_empty());
    let (tx, rx) = rt::bounded(1);
    let have = s.pieces.have.clone();
    let id = s.readers.register(0..1, 0, tx, &have, s.pieces.picker());
    let mut fx = Effects::default();
    s.piece_not_stored(
        0,
        crate::plugin::StorageError::NoSpace { path: "x".into() },
        &mut fx,
    );
    let cancels = fx
        .sent()
        .iter()
        .filter(|m| matches!(m, Message::Cancel(_)))
        .count();
    assert_eq!(cancels, reqs.len(), "what is in flight is cancelled");
    assert_eq!(
        fx.events()
            .iter()
            .filter(|e| matches!(e, Event::StorageError { .. }))
            .count(),
        1
    );
    deliver(fx);
    assert!(rx.try_recv().is_ok(), "the waiting read was woken");
    let _ = seeder.sent();
    let mut fx = Effects::default();
    s.fill_all(&mut fx);
    assert!(
        fx.sent().is_empty(),
        "nothing is fetched while the disk is full"
    );
    // A second failure is not announced again.
    s.piece_not_stored(
        1,
        crate::plugin::StorageError::NoSpace { path: "x".into() },
        &mut fx,
    );
    assert_eq!(
        fx.events()
            .iter()
            .filter(|e| matches!(e, Event::StorageError { .. }))
            .count(),
        0
    );
    // After the retry delay fetching resumes.
    let later = Instant::now() + STORAGE_RETRY + Duration::from_secs(1);
    let mut fx = Effects::default();
    s.tick(later, &mut fx);
    assert!(s.storage_fault.is_none());
    assert!(fx.sent().iter().any(|m| matches!(m, Message::Request(_))));
    let have = s.pieces.have.clone();
    s.readers.unregister(id, &have, s.pieces.picker());
}

#[test]
fn a_newcomer_takes_the_slot_of_a_peer_that_never_moved_data_and_only_that() {
    let mut s = torrent(1, Bitfield::full(1));
    let busy = connect(&mut s, 6, None);
    s.swarm.peers.get_mut(&busy.key).unwrap().last_data = Some(Instant::now());
    let mut fx = Effects::default();
    assert!(s.make_room(2, &mut fx), "a free slot is room");
    assert!(
        !s.make_room(1, &mut fx),
        "a peer moving data keeps its slot"
    );
    let silent = connect(&mut s, 7, None);
    // Just connected: given time to get started.
    assert!(!s.make_room(2, &mut fx));
    s.swarm.peers.get_mut(&silent.key).unwrap().connected_at =
        Instant::now() - Duration::from_secs(30);
    assert!(s.make_room(2, &mut fx), "the silent peer makes room");
    assert!(!s.swarm.peers.contains_key(&silent.key));
    assert!(s.swarm.peers.contains_key(&busy.key));
}

#[test]
fn requests_while_choked_are_tolerated_briefly_then_the_peer_is_dropped() {
    let mut s = torrent(1, Bitfield::full(1));
    let pest = connect(&mut s, 8, None);
    let r = BlockRequest {
        piece: 0,
        offset: 0,
        len: BLOCK_SIZE,
    };
    let mut result = Ok(());
    let mut n = 0;
    while result.is_ok() && n < 10_000 {
        result = send(&mut s, &pest, Message::Request(r)).0;
        n += 1;
    }
    assert_eq!(result, Err(DropReason::RequestFlood));
    assert!(
        s.swarm.peers[&pest.key].last_data.is_none(),
        "asking is not exchanging"
    );
}

#[test]
fn a_peer_at_its_share_of_started_pieces_duplicates_nothing_while_pieces_remain_unstarted() {
    let pieces = 64;
    let mut s = torrent(pieces, Bitfield::new(pieces));
    let a = connect(&mut s, 1, Some(Bitfield::full(pieces)));
    let b = connect(&mut s, 2, Some(Bitfield::full(pieces)));
    let asked_of_b: HashSet<BlockRequest> = b.requests().into_iter().collect();
    assert!(!asked_of_b.is_empty());
    // `a` answers the first block of each of its pieces: room in its pipeline, but it holds its
    // share of started pieces and the rest of each is asked already.
    for r in a.requests() {
        if r.offset == 0 {
            send(&mut s, &a, block(&r)).0.unwrap();
        }
    }
    let dup: Vec<BlockRequest> = a
        .requests()
        .into_iter()
        .filter(|r| asked_of_b.contains(r))
        .collect();
    assert!(
        dup.is_empty(),
        "blocks asked of both peers with {} pieces unstarted: {dup:?}",
        pieces as usize - s.pieces.assemblies.len()
    );
}

#[test]
fn once_every_piece_is_started_a_second_peer_is_asked_for_blocks_in_flight() {
    let pieces = 2;
    let mut s = torrent(pieces, Bitfield::new(pieces));
    let a = connect(&mut s, 1, Some(Bitfield::full(pieces)));
    let asked_of_a: HashSet<BlockRequest> = a.requests().into_iter().collect();
    let b = connect(&mut s, 2, Some(Bitfield::full(pieces)));
    let endgame = b.requests();
    assert!(!endgame.is_empty(), "no endgame at the end of the download");
    assert!(endgame.iter().all(|r| asked_of_a.contains(r)));
}

#[test]
fn endgame_asks_a_second_peer_only_for_blocks_it_would_deliver_before_the_first() {
    let pieces = 4;
    let mut s = torrent(pieces, Bitfield::new(pieces));
    let a = connect(&mut s, 1, Some(Bitfield::full(pieces)));
    let asked_of_a = a.requests();
    assert_eq!(asked_of_a.len(), 8, "every block asked of the first peer");
    let b = connect(&mut s, 2, Some(Bitfield::full(pieces)));
    let endgame: HashSet<BlockRequest> = b.requests().into_iter().collect();
    // Both peers at the same (assumed) rate: `a` answers in order, so its first four blocks
    // come before `b` could send them, and only the last four are worth asking twice.
    let tail: HashSet<BlockRequest> = asked_of_a[4..].iter().copied().collect();
    assert_eq!(endgame, tail, "asked of the second peer in endgame");
}

/// Fetches every piece from `seeder` (which unchoked us) and verifies it.
fn download_all(s: &mut TorrentState, seeder: &Remote) {
    while !s.complete() {
        let reqs = seeder.requests();
        assert!(
            !reqs.is_empty(),
            "nothing asked with the torrent incomplete"
        );
        for r in reqs {
            let (res, done) = send(s, seeder, block(&r));
            res.unwrap();
            for asm in done {
                let mut fx = Effects::default();
                s.piece_verified(&asm, &mut fx);
                deliver(fx);
            }
        }
    }
}

#[test]
fn a_complete_torrent_whose_storage_may_evict_stays_interested_and_refetches_at_once() {
    for evicting in [false, true] {
        let mut s = torrent(2, Bitfield::new(2));
        s.pieces.evicting = evicting;
        let seeder = connect(&mut s, 1, Some(Bitfield::full(2)));
        download_all(&mut s, &seeder);
        let sent = seeder.sent();
        // Persistent storage: the seeder is dropped as a fellow seed (its outbox is closed).
        assert_eq!(
            sent.contains(&Message::NotInterested),
            !evicting,
            "evicting {evicting}: {sent:?}"
        );
        if evicting {
            let mut fx = Effects::default();
            s.piece_evicted(1, &mut fx);
            s.fill_all(&mut fx);
            deliver(fx);
            let again = seeder.requests();
            assert!(
                !again.is_empty() && again.iter().all(|r| r.piece == 1),
                "the evicted piece is asked of the still-unchoking seeder: {again:?}"
            );
        }
    }
}
