//! Scheduling while a reader waits: shallow pipelines, and a reader's block taken from a much
//! slower peer quickly (benches/RESULTS.md, issue 13, scenarios 2 and 3).

use std::time::{Duration, Instant};

use super::tests::{Remote, connect_with, deliver, torrent};
use super::*;
use crate::rt;
use crate::torrent::rate::RateMeter;

fn peer<'a>(s: &'a mut TorrentState, r: &Remote) -> &'a mut crate::torrent::peers::PeerState {
    s.swarm.peers.get_mut(&r.key).expect("connected")
}

#[test]
fn pipelines_hold_a_second_of_rate_in_bulk_and_a_few_round_trips_while_a_reader_waits() {
    let mut s = torrent(8, Bitfield::new(8));
    let r = connect_with(&mut s, 1, None, false);
    let p = peer(&mut s, &r);
    p.retarget_queue(true);
    assert_eq!(p.queue_target, 16, "rate unknown: the starting depth");
    p.down = RateMeter::with_rate(2_000_000);
    p.min_latency = Some(Duration::from_millis(50));
    p.retarget_queue(false);
    assert_eq!(p.queue_target, 122, "bulk: one second at 2 MB/s");
    p.retarget_queue(true);
    assert_eq!(p.queue_target, 18, "streaming: 0.15 s at 2 MB/s");
    p.min_latency = Some(Duration::from_millis(200));
    p.retarget_queue(true);
    assert_eq!(p.queue_target, 73, "streaming, far peer: three round trips");
    p.down = RateMeter::with_rate(100_000);
    p.retarget_queue(true);
    assert_eq!(p.queue_target, 4, "streaming, slow peer: a few blocks");
}

#[test]
fn an_unmeasured_peer_pipeline_grows_per_answer_unless_a_reader_waits() {
    let mut s = torrent(8, Bitfield::new(8));
    let r = connect_with(&mut s, 1, None, false);
    let p = peer(&mut s, &r);
    let sent = Instant::now();
    for _ in 0..16 {
        p.answered(sent, Instant::now(), false);
    }
    assert_eq!(p.queue_target, 32, "slow start: one more block per answer");
    p.answered(sent, Instant::now(), true);
    assert_eq!(p.queue_target, 32, "a waiting reader stops the growth");
    p.down = RateMeter::with_rate(2_000_000);
    p.answered(sent, Instant::now(), false);
    assert_eq!(p.queue_target, 32, "a measured peer is sized by its rate");
    p.down = RateMeter::default();
    for _ in 0..100 {
        p.answered(sent, Instant::now(), false);
    }
    assert_eq!(p.queue_target, 64, "the growth stops at 1 MiB in flight");
}

/// A reader waits for piece 0, asked of `slow` only; `fast` has room. Returns what `fast` is
/// asked for by the rescue `after` the requests were sent.
fn rescue(slow_rate: u64, fast_rate: u64, after: Duration) -> Vec<crate::wire::BlockRequest> {
    let mut s = torrent(64, Bitfield::new(64));
    let slow = connect_with(&mut s, 1, Some(Bitfield::full(64)), false);
    let sent_at = Instant::now();
    assert!(slow.requests().iter().any(|r| r.piece == 0));
    let fast = connect_with(&mut s, 2, Some(Bitfield::full(64)), false);
    assert!(fast.requests().iter().all(|r| r.piece != 0));
    peer(&mut s, &slow).down = RateMeter::with_rate(slow_rate);
    peer(&mut s, &fast).down = RateMeter::with_rate(fast_rate);
    let (tx, _rx) = rt::bounded(1);
    let have = s.pieces.have.clone();
    s.readers.register(0..1, 0, tx, &have, s.pieces.picker());
    let mut fx = Effects::default();
    s.scheduler().rescue_late(sent_at + after, &mut fx);
    deliver(fx);
    fast.requests()
        .into_iter()
        .filter(|r| r.piece == 0)
        .collect()
}

#[test]
fn a_readers_block_at_a_much_slower_peer_is_also_asked_of_a_quick_one_within_a_tick() {
    let ms = Duration::from_millis;
    assert!(
        rescue(100_000, 2_000_000, ms(100)).is_empty(),
        "not yet late"
    );
    assert_eq!(
        rescue(100_000, 2_000_000, ms(300)).len(),
        2,
        "20 times slower: both blocks re-asked after 250 ms"
    );
    assert!(
        rescue(2_000_000, 2_000_000, ms(300)).is_empty(),
        "peers alike: no duplicate"
    );
}

#[test]
fn a_new_peers_first_tick_already_gives_its_rate_and_pipeline() {
    let mut s = torrent(8, Bitfield::new(8));
    let r = connect_with(&mut s, 1, None, false);
    let p = peer(&mut s, &r);
    p.down.add(2_000_000);
    p.down.tick(p.connected_at + Duration::from_millis(500));
    assert!(p.down.rate() > 0, "no rate after the first tick");
    p.retarget_queue(false);
    assert!(
        p.queue_target > 16,
        "4 MB/s still gets the starting pipeline: {}",
        p.queue_target
    );
}

#[test]
fn a_quiet_peer_holding_a_readers_requests_is_nudged_once_per_quiet_spell() {
    use crate::torrent::peers::NUDGE_AFTER;
    let mut s = torrent(8, Bitfield::new(8));
    let r = connect_with(&mut s, 1, Some(Bitfield::full(8)), false);
    let p = peer(&mut s, &r);
    let t0 = Instant::now();
    p.peer_choking = false;
    let req = crate::wire::BlockRequest {
        piece: 3,
        offset: 0,
        len: crate::wire::BLOCK_SIZE,
    };
    p.requests.clear();
    p.requests.insert(req, t0);
    let waited = |piece: u32| piece == 3;
    assert_eq!(p.nudge_in(|_| false, t0), None, "no reader waits on it");
    assert_eq!(p.nudge_in(waited, t0), Some(NUDGE_AFTER));
    assert_eq!(
        p.nudge_in(waited, t0 + NUDGE_AFTER * 2),
        Some(Duration::ZERO)
    );
    p.nudged_at = Some(t0 + NUDGE_AFTER * 2);
    assert_eq!(
        p.nudge_in(waited, t0 + NUDGE_AFTER * 9),
        None,
        "once per quiet spell"
    );
    p.last_data = Some(t0 + NUDGE_AFTER * 3);
    assert_eq!(
        p.nudge_in(waited, t0 + NUDGE_AFTER * 3),
        Some(NUDGE_AFTER),
        "data starts a new spell"
    );
    p.min_latency = Some(NUDGE_AFTER * 5);
    assert_eq!(
        p.nudge_in(waited, t0 + NUDGE_AFTER * 3),
        Some(NUDGE_AFTER * 10),
        "a far peer is given two of its round trips"
    );
    p.peer_choking = true;
    assert_eq!(
        p.nudge_in(waited, t0 + NUDGE_AFTER * 30),
        None,
        "choking us"
    );
}
