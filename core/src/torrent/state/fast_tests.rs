//! The fast extension (BEP 6) in the torrent core: messages in, effects out.

use super::tests::{Remote, connect_with, send, torrent};
use super::*;
use crate::rt;

fn connect_fast(s: &mut TorrentState, n: u8) -> Remote {
    connect_with(s, n, None, true)
}

fn block_req(piece: u32) -> BlockRequest {
    BlockRequest {
        piece,
        offset: 0,
        len: crate::wire::BLOCK_SIZE,
    }
}

#[test]
fn fast_peers_are_told_have_all_or_have_none_and_others_get_a_bitfield() {
    let mut seeder = torrent(4, Bitfield::full(4));
    assert_eq!(connect_fast(&mut seeder, 1).sent(), vec![Message::HaveAll]);
    let plain = connect_with(&mut seeder, 2, None, false);
    assert_eq!(plain.sent(), vec![Message::Bitfield(vec![0xf0])]);
    let mut empty = torrent(4, Bitfield::new(4));
    assert_eq!(connect_fast(&mut empty, 1).sent(), vec![Message::HaveNone]);
    assert!(connect_with(&mut empty, 2, None, false).sent().is_empty());
}

#[test]
fn have_all_from_a_fast_peer_makes_it_a_seeder_and_from_another_peer_drops_it() {
    let mut s = torrent(4, Bitfield::new(4));
    let fast = connect_fast(&mut s, 1);
    fast.sent();
    let (r, _) = send(&mut s, &fast, Message::HaveAll);
    r.unwrap();
    assert!(s.swarm.peers[&fast.key].has.is_full());
    send(&mut s, &fast, Message::Unchoke).0.unwrap();
    assert_eq!(fast.requests().len(), 8, "every block of the four pieces");

    let plain = connect_with(&mut s, 2, None, false);
    for m in [
        Message::HaveAll,
        Message::HaveNone,
        Message::Reject(block_req(0)),
    ] {
        assert!(matches!(
            send(&mut s, &plain, m).0,
            Err(DropReason::Protocol(_))
        ));
    }
}

#[test]
fn a_rejected_request_is_asked_again_at_once_not_after_the_timeout() {
    let mut s = torrent(1, Bitfield::new(1));
    let a = connect_fast(&mut s, 1);
    send(&mut s, &a, Message::HaveAll).0.unwrap();
    send(&mut s, &a, Message::Unchoke).0.unwrap();
    let first = a.requests();
    assert_eq!(first.len(), 2);
    send(&mut s, &a, Message::Reject(first[0])).0.unwrap();
    // The only peer is still unchoking us: the freed block goes back to it.
    assert_eq!(a.requests(), vec![first[0]]);
    assert!(s.swarm.peers[&a.key].requests.contains_key(&first[0]));
    // A reject for something never asked counts against the peer like an unasked block.
    let never = BlockRequest { len: 1, ..first[0] };
    send(&mut s, &a, Message::Reject(never)).0.unwrap();
    assert_eq!(s.swarm.peers[&a.key].unrequested, 1);
}

#[test]
fn requests_from_a_fast_peer_we_choke_are_rejected_now_and_when_queued() {
    let mut s = torrent(1, Bitfield::full(1));
    let p = connect_fast(&mut s, 1);
    p.sent();
    let r = block_req(0);
    send(&mut s, &p, Message::Request(r)).0.unwrap();
    assert_eq!(p.sent(), vec![Message::Reject(r)]);
    // Unchoked, the request is queued; choked before the writer reaches it, it is rejected.
    s.swarm.peers.get_mut(&p.key).unwrap().am_choking = false;
    send(&mut s, &p, Message::Request(r)).0.unwrap();
    s.swarm.peers.get_mut(&p.key).unwrap().am_choking = true;
    assert_eq!(s.take_upload(p.key, p.conn, &r), Upload::Reject);
}

#[test]
fn a_choking_peer_is_asked_only_for_its_allowed_fast_pieces() {
    let mut s = torrent(4, Bitfield::new(4));
    let p = connect_fast(&mut s, 1);
    send(&mut s, &p, Message::HaveAll).0.unwrap();
    p.sent();
    send(&mut s, &p, Message::AllowedFast(2)).0.unwrap();
    let reqs = p.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(reqs.iter().all(|r| r.piece == 2), "{reqs:?}");
    // Out-of-range indices are ignored.
    send(&mut s, &p, Message::AllowedFast(99)).0.unwrap();
    assert_eq!(s.swarm.peers[&p.key].allowed_fast, vec![2]);
    // Unchoked, the rest follows as usual.
    send(&mut s, &p, Message::Unchoke).0.unwrap();
    let rest = p.requests();
    assert_eq!(rest.len(), 6, "{rest:?}");
}

#[test]
fn while_a_reader_waits_a_choking_peer_is_asked_only_for_allowed_fast_pieces_it_wants() {
    let mut s = torrent(4, Bitfield::new(4));
    let (tx, _rx) = rt::bounded(1);
    let have = s.pieces.have.clone();
    s.readers.register(3..4, 0, tx, &have, s.pieces.picker());
    let p = connect_fast(&mut s, 1);
    send(&mut s, &p, Message::HaveAll).0.unwrap();
    p.sent();
    send(&mut s, &p, Message::AllowedFast(2)).0.unwrap();
    assert!(
        p.requests().is_empty(),
        "piece 2 would go ahead of the reader's"
    );
    send(&mut s, &p, Message::AllowedFast(3)).0.unwrap();
    let reqs = p.requests();
    assert!(
        !reqs.is_empty() && reqs.iter().all(|r| r.piece == 3),
        "{reqs:?}"
    );
}
