//! The fast extension (BEP 6) against real peers: a libtorrent seeder tells rivulet it has
//! everything with have-all and rivulet downloads a correct copy; aria2 downloads from a
//! rivulet seed that speaks it; a scripted peer that asks while choked gets reject-request
//! back, and have-all from a peer that never announced the extension gets it dropped.

use std::time::Duration;

use rivulet_tests::aria2::Aria2Leecher;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::libtorrent::{LibtorrentNode, Seed};
use rivulet_tests::ports::{free_addr, own_loopback};
use rivulet_tests::raw_peer::{Closed, RawPeer};
use rivulet_tests::rivulet::{self, Download};
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::wire;
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(180);
const ANSWER: Duration = Duration::from_secs(15);

#[test]
fn a_libtorrent_seeder_says_have_all_and_rivulet_downloads_a_correct_copy() {
    let fixture = Fixture::multi_small();
    let work = WorkDir::new("fast-libtorrent-seeder");
    // Nobody listens at this tracker: the seeder is given with --peer.
    let torrent = fixture.torrent("http://127.0.0.1:9/announce", "fast", work.path());
    let seeder = LibtorrentNode::start(
        work.path(),
        own_loopback(),
        None,
        Some(Seed {
            torrent: &torrent,
            data: &fixture.root,
        }),
    );
    let out = work.subdir("out");
    let mut leecher = Download::new(&torrent, &out)
        .listen(free_addr(own_loopback()))
        .peer(seeder.addr)
        .no_dht()
        .events(&work.join("leecher-events.jsonl"))
        .spawn(work.path(), "leecher");
    leecher.wait_success(BOUND);
    assert_same_files(fixture, &out, "rivulet leecher of a libtorrent seeder");
    let events = leecher.events();
    assert!(
        events
            .of("peer_has_all")
            .any(|e| e["addr"] == seeder.addr.to_string()),
        "no have-all from the libtorrent seeder {}:\n{}",
        seeder.addr,
        events.tail(20)
    );
}

#[test]
fn aria2_downloads_from_a_rivulet_seed_speaking_the_fast_extension() {
    let fixture = Fixture::multi_small();
    let work = WorkDir::new("fast-aria2-leecher");
    let (tracker, mut seed, _) = rivulet::listed_seed(&work, fixture, &[]);
    let torrent = fixture.torrent(&tracker.http_url(), "leech", work.path());
    let out = work.subdir("out");
    let mut leecher = Aria2Leecher::start(work.path(), &torrent, &out, own_loopback());
    leecher.wait_done(BOUND);
    assert_same_files(fixture, &out, "aria2 leecher of a fast rivulet seed");
    seed.proc.assert_running("serving");
}

#[test]
fn a_fast_peer_that_requests_while_choked_gets_reject_request_back() {
    let fixture = Fixture::single_small();
    let work = WorkDir::new("fast-reject");
    let (_tracker, _seed, addr) = rivulet::listed_seed(&work, fixture, &[]);
    let mut peer = RawPeer::connect(addr).expect("connect to the seed");
    let theirs = peer
        .exchange_handshakes(&wire::fast_handshake(&fixture.meta.info_hash), ANSWER)
        .expect("the seed's handshake");
    assert!(
        wire::announces_fast(&theirs),
        "the seed does not announce BEP 6"
    );
    peer.wait_message(wire::HAVE_ALL, ANSWER)
        .expect("a complete seed says have-all to a fast peer");
    // Never interested, so never unchoked: each request is refused, not silently dropped.
    for piece in 0..3 {
        peer.send(&wire::request(piece, 0, 16384))
            .expect("send a request");
        let reject = peer
            .wait_message(wire::REJECT_REQUEST, ANSWER)
            .expect("a reject-request");
        let want: Vec<u8> = [piece, 0, 16384]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(reject, want, "the reject names the request");
    }
}

#[test]
fn have_all_from_a_peer_that_did_not_announce_the_fast_extension_drops_it() {
    let fixture = Fixture::single_small();
    let work = WorkDir::new("fast-have-all-unannounced");
    let (_tracker, mut seed, addr) = rivulet::listed_seed(&work, fixture, &[]);
    let mut peer = RawPeer::connect(addr).expect("connect to the seed");
    peer.handshake(&fixture.meta.info_hash, ANSWER)
        .expect("the seed's handshake");
    peer.send(&wire::message(wire::HAVE_ALL, &[]))
        .expect("send have-all");
    assert_eq!(peer.wait_closed(ANSWER), Closed::ByRemote);
    let me = peer.local_addr().to_string();
    seed.wait_events(ANSWER, "the have-all sender to be dropped", |e| {
        e.of("peer_dropped").any(|d| {
            d["addr"] == me.as_str()
                && d["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("without the fast extension"))
        })
    });
}
