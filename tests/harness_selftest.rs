//! Proves the harness with real clients only (no rivulet): aria2 seeds a fixture through
//! opentracker, and aria2 (HTTP and UDP announce) and qBittorrent download correct copies; and
//! a real aria2 downloads a correct copy from the honest fake peer alone.

use std::time::Duration;

use rivulet_tests::aria2::{Aria2Leecher, Aria2Seeder, SeederOptions};
use rivulet_tests::fake_peer::{FakePeer, Misbehaviour};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::own_loopback;
use rivulet_tests::qbittorrent::QbLeecher;
use rivulet_tests::tracker::{Announce, Tracker};
use rivulet_tests::verify::{assert_same_files, differences};
use rivulet_tests::workdir::WorkDir;

const TRANSFER: Duration = Duration::from_secs(120);

fn aria2_to_aria2(test: &str, fixture: &Fixture, proto: Announce) {
    let work = WorkDir::new(test);
    let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
    let seed_torrent = fixture.torrent(&tracker.http_url(), "http", work.path());
    let mut seeder = Aria2Seeder::start(
        work.path(),
        fixture,
        &seed_torrent,
        &tracker,
        SeederOptions::default(),
    );
    let torrent = fixture.torrent(&tracker.url(proto), proto.tag(), work.path());
    let out = work.subdir("out");
    assert!(
        !differences(fixture, &out).is_empty(),
        "an empty dir must not pass the check"
    );
    let mut leecher = Aria2Leecher::start(work.path(), &torrent, &out, own_loopback());
    leecher.wait_done(TRANSFER);
    seeder.assert_running();
    assert_same_files(fixture, &out, "aria2 leecher");
}

#[test]
fn aria2_to_aria2_single_http() {
    aria2_to_aria2("selftest-single-http", Fixture::single(), Announce::Http);
}

#[test]
fn aria2_to_aria2_multi_udp() {
    aria2_to_aria2("selftest-multi-udp", Fixture::multi(), Announce::Udp);
}

#[test]
fn aria2_to_aria2_small_udp() {
    aria2_to_aria2("selftest-small-udp", Fixture::single_small(), Announce::Udp);
}

#[test]
fn aria2_to_qbittorrent_multi() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("selftest-qbittorrent");
    let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
    let torrent = fixture.torrent(&tracker.http_url(), "http", work.path());
    let _seeder = Aria2Seeder::start(
        work.path(),
        fixture,
        &torrent,
        &tracker,
        SeederOptions::default(),
    );
    let out = work.subdir("out");
    let mut qb = QbLeecher::start(work.path(), &torrent, &out, own_loopback());
    qb.wait_done(TRANSFER);
    assert_same_files(fixture, &out, "qBittorrent leecher");
}

#[test]
fn aria2_downloads_from_honest_fake_peer() {
    let fixture = Fixture::single_small();
    let work = WorkDir::new("selftest-fake-peer");
    let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
    let fake = FakePeer::start(own_loopback(), fixture, Misbehaviour::Honest);
    let std::net::SocketAddr::V4(fake_addr) = fake.addr else {
        unreachable!("fake peers listen on IPv4 loopback")
    };
    tracker.announce_seeder(&fixture.meta.info_hash, fake_addr);
    let torrent = fixture.torrent(&tracker.http_url(), "http", work.path());
    let out = work.subdir("out");
    let mut leecher = Aria2Leecher::start(work.path(), &torrent, &out, own_loopback());
    leecher.wait_done(TRANSFER);
    assert_same_files(fixture, &out, "aria2 leecher of the fake peer");
    let record = fake.record();
    assert!(record.handshakes >= 1, "{record:?}");
    assert_eq!(
        record.pieces_served.len() as u32,
        fixture.meta.piece_count(),
        "every piece came from the fake peer"
    );
}
