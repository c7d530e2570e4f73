//! Deadlines first, earliest first, then rarest-first.

use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::PiecePicker;
use rivulet_picker_streaming::Streaming;

fn bits(len: u32, set: impl IntoIterator<Item = u32>) -> Bitfield {
    let mut b = Bitfield::new(len);
    for i in set {
        b.set(i);
    }
    b
}

fn swarm(n: u32) -> Streaming {
    let mut p = Streaming::with_seed(7);
    p.init(n, &Bitfield::new(n));
    // Pieces 0..10 are rare (one source), the rest common.
    p.peer_bitfield(1, &Bitfield::full(n));
    p.peer_bitfield(2, &bits(n, 10..n));
    p.peer_bitfield(3, &bits(n, 10..n));
    p
}

#[test]
fn earliest_deadline_first_then_rarest() {
    let n = 100;
    let mut p = swarm(n);
    p.set_deadline(50, Some(300));
    p.set_deadline(40, Some(100));
    p.set_deadline(60, Some(200));
    assert_eq!(p.pick(1), Some(40));
    assert_eq!(p.pick(1), Some(60));
    assert_eq!(p.pick(1), Some(50));
    assert!(p.pick(1).unwrap() < 10, "falls back to the rare pieces");
}

#[test]
fn skips_deadline_pieces_the_peer_lacks_or_that_are_taken() {
    let n = 100;
    let mut p = swarm(n);
    p.set_deadline(5, Some(10));
    p.set_deadline(70, Some(20));
    // Peer 2 lacks piece 5: it gets the next deadline piece it has.
    assert_eq!(p.pick(2), Some(70));
    assert_eq!(p.pick(1), Some(5));
    // Both in progress now: nothing urgent left, rarest-first for the rest.
    let next = p.pick(1).unwrap();
    assert!(next != 5 && next != 70 && next < 10);
}

#[test]
fn a_lost_deadline_piece_is_urgent_again_and_a_cleared_one_is_not() {
    let n = 100;
    let mut p = swarm(n);
    p.set_deadline(80, Some(5));
    p.set_deadline(90, Some(6));
    assert_eq!(p.pick(1), Some(80));
    p.piece_lost(80);
    assert_eq!(p.pick(1), Some(80));
    p.set_deadline(90, None);
    assert!(p.pick(1).unwrap() < 10, "90 is back to normal priority");
    // A verified piece loses its deadline for good.
    p.set_deadline(95, Some(1));
    p.piece_verified(95);
    p.piece_lost(80);
    assert_eq!(p.pick(1), Some(80));
}

#[test]
fn moving_a_deadline_reorders() {
    let n = 100;
    let mut p = swarm(n);
    p.set_deadline(30, Some(100));
    p.set_deadline(31, Some(200));
    p.set_deadline(31, Some(50));
    assert_eq!(p.pick(1), Some(31));
    assert_eq!(p.pick(1), Some(30));
    // A deadline on a piece already in progress does not make it pickable twice.
    p.set_deadline(30, Some(1));
    assert_ne!(p.pick(1), Some(30));
}
