//! The picker contract, checked against a brute-force model of the swarm.

use std::collections::HashMap;

use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::PiecePicker;
use rivulet_picker_rarest_first::RarestFirst;

fn bits(len: u32, set: impl IntoIterator<Item = u32>) -> Bitfield {
    let mut b = Bitfield::new(len);
    for i in set {
        b.set(i);
    }
    b
}

#[test]
fn picks_the_rarest_piece_the_peer_has() {
    let mut p = RarestFirst::with_seed(1);
    p.init(10, &Bitfield::new(10));
    p.peer_bitfield(1, &Bitfield::full(10));
    p.peer_bitfield(2, &bits(10, 0..5));
    p.peer_bitfield(3, &bits(10, 0..5));
    // Pieces 5..10 have one source, 0..5 three: peer 1 must be asked for the rare ones first.
    let mut first: Vec<u32> = (0..5).map(|_| p.pick(1).unwrap()).collect();
    first.sort();
    assert_eq!(first, vec![5, 6, 7, 8, 9]);
    // Peer 2 lacks everything still wanted but 0..5.
    let q = p.pick(2).unwrap();
    assert!(q < 5);
}

#[test]
fn never_repeats_in_progress_or_verified_and_lost_pieces_come_back() {
    let mut p = RarestFirst::with_seed(2);
    let have = bits(8, [0]);
    p.init(8, &have);
    let all = Bitfield::full(8);
    p.peer_bitfield(7, &all);
    p.piece_verified(1);
    let mut got: Vec<u32> = std::iter::from_fn(|| p.pick(7)).collect();
    got.sort();
    assert_eq!(got, vec![2, 3, 4, 5, 6, 7]);
    assert_eq!(p.pick(7), None);
    p.piece_lost(4);
    assert_eq!(p.pick(7), Some(4));
    assert_eq!(p.pick(7), None);
    // A verified piece the storage dropped is wanted again too.
    p.piece_lost(1);
    assert_eq!(p.pick(7), Some(1));
}

#[test]
fn a_peer_with_nothing_wanted_gets_nothing() {
    let mut p = RarestFirst::with_seed(3);
    p.init(100, &bits(100, 0..50));
    p.peer_bitfield(1, &bits(100, 0..50));
    p.peer_bitfield(2, &Bitfield::new(100));
    assert_eq!(p.pick(1), None);
    assert_eq!(p.pick(2), None);
    assert_eq!(p.pick(3), None, "a peer we know nothing of has nothing");
}

#[test]
fn a_departed_peer_no_longer_counts() {
    let mut p = RarestFirst::with_seed(4);
    p.init(4, &Bitfield::new(4));
    p.peer_bitfield(1, &bits(4, [0, 1]));
    p.peer_bitfield(2, &bits(4, [0, 1]));
    p.peer_bitfield(3, &bits(4, [0]));
    p.peer_have(3, 2);
    p.peer_have(3, 2);
    p.peer_bitfield(9, &bits(4, [0, 1]));
    // avail: 0:4 1:3 2:1 3:0
    assert_eq!(p.pick(9), Some(1));
    p.piece_lost(1);
    p.peer_left(1);
    p.peer_left(2);
    p.peer_have(9, 2);
    // avail: 0:2 1:1 2:2
    assert_eq!(p.pick(9), Some(1));
    // A new bitfield replaces the old one: peer 3 now has only piece 3.
    p.peer_bitfield(3, &bits(4, [3]));
    p.peer_bitfield(4, &bits(4, [0, 2, 3]));
    // avail: 0:2 2:2 3:2; peer 9 has 0, 1 (in progress) and 2.
    let q = p.pick(9).unwrap();
    assert!(q == 0 || q == 2, "picked {q}");
}

#[test]
fn equally_rare_pieces_are_spread_between_leechers() {
    let pieces = 1000;
    let firsts: Vec<u32> = (0..8)
        .map(|seed| {
            let mut p = RarestFirst::with_seed(seed);
            p.init(pieces, &Bitfield::new(pieces));
            p.peer_bitfield(1, &Bitfield::full(pieces));
            p.pick(1).unwrap()
        })
        .collect();
    let mut distinct = firsts.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() >= 6, "first picks {firsts:?}");
}

#[test]
fn finds_a_lone_piece_past_the_scan_budget() {
    // 10,000 rare pieces (one source) the asking peer lacks, and one commoner piece it has: the
    // bounded scan gives up and the word pass must still find it.
    let pieces = 10_001;
    let mut p = RarestFirst::with_seed(5);
    p.init(pieces, &Bitfield::new(pieces));
    p.peer_bitfield(1, &bits(pieces, [10_000]));
    p.peer_bitfield(2, &bits(pieces, 0..10_000));
    p.peer_bitfield(3, &bits(pieces, [10_000]));
    assert_eq!(p.pick(1), Some(10_000));
    assert_eq!(p.pick(1), None);
    assert_eq!(p.pick(3), None);
}

/// Random operations; every pick is checked against a brute-force model: the piece is one the
/// peer has, wanted, not in progress, and no such piece is rarer. `None` only if none exists.
#[test]
fn matches_a_brute_force_model() {
    let pieces = 300u32;
    let mut rng = fastrand::Rng::with_seed(42);
    let mut p = RarestFirst::with_seed(6);
    let have = bits(pieces, (0..pieces).filter(|_| rng.u8(..10) == 0));
    p.init(pieces, &have);
    let mut done = have.clone();
    let mut in_progress = Bitfield::new(pieces);
    let mut peers: HashMap<u32, Bitfield> = HashMap::new();
    let avail =
        |peers: &HashMap<u32, Bitfield>, i: u32| peers.values().filter(|b| b.get(i)).count();
    let mut picks = 0;
    for _ in 0..20_000 {
        match rng.u8(..100) {
            0..=4 => {
                let peer = rng.u32(..12);
                let b = bits(pieces, (0..pieces).filter(|_| rng.bool()));
                p.peer_bitfield(peer, &b);
                peers.insert(peer, b);
            }
            5..=24 => {
                let peer = rng.u32(..12);
                let i = rng.u32(..pieces);
                p.peer_have(peer, i);
                peers
                    .entry(peer)
                    .or_insert_with(|| Bitfield::new(pieces))
                    .set(i);
            }
            25..=26 => {
                let peer = rng.u32(..12);
                p.peer_left(peer);
                peers.remove(&peer);
            }
            27..=36 => {
                let i = rng.u32(..pieces);
                p.piece_verified(i);
                done.set(i);
                in_progress.clear(i);
            }
            37..=46 => {
                let i = rng.u32(..pieces);
                p.piece_lost(i);
                done.clear(i);
                in_progress.clear(i);
            }
            _ => {
                let peer = rng.u32(..12);
                let Some(has) = peers.get(&peer).cloned() else {
                    continue;
                };
                let best = (0..pieces)
                    .filter(|&i| has.get(i) && !done.get(i) && !in_progress.get(i))
                    .map(|i| avail(&peers, i))
                    .min();
                match (p.pick(peer), best) {
                    (None, None) => {}
                    (Some(i), Some(best)) => {
                        assert!(has.get(i), "picked {i}, which the peer lacks");
                        assert!(!done.get(i), "picked {i}, already verified");
                        assert!(!in_progress.get(i), "picked {i}, already in progress");
                        assert_eq!(avail(&peers, i), best, "picked {i}, not the rarest");
                        in_progress.set(i);
                        picks += 1;
                    }
                    (got, best) => panic!("picked {got:?}, model says rarest has {best:?}"),
                }
            }
        }
    }
    assert!(picks > 1000, "only {picks} picks exercised");
}
