//! Misbehaving peers next to an honest aria2 seeder: whatever the fake peer does (corrupt
//! blocks, wrong sizes, unrequested blocks, a 4 GiB length prefix, a cut-off block, silence),
//! the download completes with correct files within its bound, and the liars are dropped.

use std::net::SocketAddr;
use std::time::Duration;

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::events::Events;
use rivulet_tests::fake_peer::{FakePeer, Misbehaviour, Record};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr, own_loopback};
use rivulet_tests::rivulet::Download;
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(180);

struct Outcome {
    events: Events,
    record: Record,
    fake: SocketAddr,
}

/// Downloads the multi fixture from a throttled aria2 seeder (so that the fake peer, which
/// answers at once, gets its share of requests) and the fake peer given with `--peer`.
fn download_next_to(test: &str, behaviour: Misbehaviour) -> Outcome {
    let fixture = Fixture::multi();
    let work = WorkDir::new(test);
    let swarm = Swarm::start(
        &work,
        fixture,
        SeederOptions {
            upload_limit: 4 << 20,
        },
    );
    let fake = FakePeer::start(own_loopback(), fixture, behaviour);
    let torrent = swarm.torrent(&work, Announce::Http);
    let out = work.subdir("out");
    let mut run = Download::new(&torrent, &out)
        .listen(free_addr(LOCALHOST))
        .peer(fake.addr)
        .events(&work.join("events.jsonl"))
        .spawn(work.path(), "download");
    run.wait_success(BOUND);
    assert_same_files(fixture, &out, &format!("download next to {behaviour:?}"));
    let record = fake.record();
    assert!(
        record.handshakes >= 1,
        "rivulet never handshook with the --peer {}: {record:?}",
        fake.addr
    );
    Outcome {
        events: run.events(),
        record,
        fake: fake.addr,
    }
}

impl Outcome {
    fn dropped(&self) -> bool {
        let addr = self.fake.to_string();
        self.events.addrs("peer_banned").contains(&addr)
            || self.events.addrs("peer_dropped").contains(&addr)
            || self.record.closed_by_client >= 1
    }

    fn assert_dropped(&self) {
        assert!(
            self.dropped(),
            "the fake peer {} was never dropped: {:?}\n{}",
            self.fake,
            self.record,
            self.events.tail(20)
        );
    }
}

#[test]
fn corrupt_blocks_fail_hash_and_the_liar_is_banned() {
    let o = download_next_to("bad-peer-corrupt", Misbehaviour::CorruptBlocks);
    let failed = o.events.hash_failed();
    assert!(
        !failed.is_empty(),
        "the fake peer served {} pieces with corrupt blocks but no hash_failed event: {:?}",
        o.record.pieces_served.len(),
        o.record
    );
    assert!(
        failed.is_subset(&o.record.pieces_served),
        "hash_failed {failed:?} names pieces the liar never touched ({:?})",
        o.record.pieces_served
    );
    let fake = o.fake.to_string();
    assert!(
        o.events.of("hash_failed").any(|l| l["peers"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p == fake.as_str()))),
        "no hash_failed event names the fake peer {fake}"
    );
    o.assert_dropped();
}

#[test]
fn wrong_block_size_is_not_accepted() {
    let o = download_next_to("bad-peer-wrong-size", Misbehaviour::WrongBlockSize);
    assert!(
        o.events.hash_failed().is_empty(),
        "a half-length block was written as if whole"
    );
    o.assert_dropped();
}

#[test]
fn unrequested_blocks_are_discarded() {
    let o = download_next_to("bad-peer-unrequested", Misbehaviour::UnrequestedBlocks);
    assert!(
        o.events.hash_failed().is_empty(),
        "unrequested zero blocks were written: hash_failed {:?}",
        o.events.hash_failed()
    );
}

#[test]
fn huge_length_prefix_drops_the_peer() {
    let o = download_next_to("bad-peer-huge-length", Misbehaviour::HugeLengthPrefix);
    o.assert_dropped();
}

#[test]
fn disconnect_mid_block_is_survived() {
    let o = download_next_to("bad-peer-disconnect", Misbehaviour::DisconnectMidBlock);
    assert!(
        !o.record.requests.is_empty(),
        "rivulet never asked the fake peer for anything"
    );
}

#[test]
fn silent_peer_does_not_stall_the_download() {
    let o = download_next_to("bad-peer-silent", Misbehaviour::Silence);
    assert!(
        !o.record.requests.is_empty(),
        "rivulet never asked the silent peer, so its requests were never timed out"
    );
}
