//! The disk storage under a running process: a data file truncated by another process while
//! `rivulet seed` serves it. Reading through a memory map, the next read of the lost range
//! raised SIGBUS and killed the seed; now that read fails (the block is not served) and the seed
//! goes on serving what is left.

use std::fs::OpenOptions;
use std::time::Duration;

use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::raw_peer::RawPeer;
use rivulet_tests::rivulet;
use rivulet_tests::tracker::Tracker;
use rivulet_tests::wire;
use rivulet_tests::workdir::WorkDir;

const BLOCK: u32 = 16 << 10;

#[test]
fn a_data_file_truncated_under_a_running_seed_fails_those_reads_and_the_seed_lives() {
    let fixture = Fixture::single_small();
    let work = WorkDir::new("storage-truncated-under-seed");
    let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
    let data = work.subdir("data");
    fixture.copy_payload(&data);
    let torrent = fixture.torrent(&tracker.http_url(), "http", work.path());
    let addr = free_addr(LOCALHOST);
    let mut seed = rivulet::seed(
        work.path(),
        &torrent,
        &data,
        addr,
        &work.join("seed-events.jsonl"),
    );

    let mut peer = RawPeer::connect(addr).expect("connect to the seed");
    peer.handshake(&fixture.meta.info_hash, Duration::from_secs(10))
        .expect("handshake with the seed");
    peer.wait_message(wire::BITFIELD, Duration::from_secs(10))
        .expect("the seed announces its pieces");
    peer.send(&wire::message(wire::INTERESTED, &[]))
        .expect("send interested");
    peer.wait_message(wire::UNCHOKE, Duration::from_secs(20))
        .expect("the seed unchokes an interested peer");

    // As `truncate -s 1M` by another process: pieces past the first 16 are gone.
    OpenOptions::new()
        .write(true)
        .open(data.join(fixture.name()))
        .expect("open the seed's data")
        .set_len(1 << 20)
        .expect("truncate the seed's data");
    let lost = fixture.meta.piece_count() - 2;
    peer.send(&wire::request(lost, 0, BLOCK))
        .expect("request a lost block");
    peer.send(&wire::request(0, 0, BLOCK))
        .expect("request a kept block");

    let served = peer
        .wait_message(wire::PIECE, Duration::from_secs(20))
        .unwrap_or_else(|e| {
            panic!(
                "no block served after the truncation ({e}); seed log:\n{}",
                seed.proc.log_tail(3000)
            )
        });
    let index = u32::from_be_bytes(served[..4].try_into().unwrap());
    assert_eq!(
        index, 0,
        "the seed served piece {index}, which was truncated away"
    );
    assert_eq!(served[8..], fixture.piece(0)[..BLOCK as usize]);
    seed.proc.assert_running("after a read of truncated data");
    seed.terminate(Duration::from_secs(15));
}
