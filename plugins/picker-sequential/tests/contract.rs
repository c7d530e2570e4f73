//! The picker contract for in-order picking.

use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::PiecePicker;
use rivulet_picker_sequential::Sequential;

fn bits(len: u32, set: impl IntoIterator<Item = u32>) -> Bitfield {
    let mut b = Bitfield::new(len);
    for i in set {
        b.set(i);
    }
    b
}

#[test]
fn picks_in_order_skipping_held_in_progress_and_missing() {
    let n = 200;
    let mut p = Sequential::default();
    p.init(n, &bits(n, [0, 1, 5]));
    p.peer_bitfield(1, &Bitfield::full(n));
    p.peer_bitfield(2, &bits(n, 130..n));
    assert_eq!(p.pick(1), Some(2));
    assert_eq!(p.pick(1), Some(3));
    // Peer 2 lacks 4 and everything below 130 but 4 is still the next for a full peer.
    assert_eq!(p.pick(2), Some(130));
    assert_eq!(p.pick(1), Some(4));
    assert_eq!(p.pick(1), Some(6));
    p.piece_verified(7);
    assert_eq!(p.pick(1), Some(8));
}

#[test]
fn lost_pieces_come_back_first_and_verified_ones_never() {
    let n = 300;
    let mut p = Sequential::default();
    p.init(n, &Bitfield::new(n));
    p.peer_bitfield(1, &Bitfield::full(n));
    p.peer_have(2, 250);
    let got: Vec<u32> = std::iter::from_fn(|| p.pick(1)).collect();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
    for i in 0..n {
        p.piece_verified(i);
    }
    assert_eq!(p.pick(1), None);
    p.piece_lost(250);
    p.piece_lost(3);
    assert_eq!(p.pick(2), Some(250));
    assert_eq!(p.pick(1), Some(3));
    assert_eq!(p.pick(1), None);
    // Out-of-range indexes are ignored, not a panic.
    p.piece_lost(n + 5);
    p.piece_verified(n + 5);
    assert_eq!(p.pick(1), None);
}
