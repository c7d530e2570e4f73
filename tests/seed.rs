//! `rivulet seed` serves a complete copy: a real aria2 and a real qBittorrent (libtorrent, on a
//! loopback address of its own inside the isolated namespace) each download a correct copy from
//! it, and SIGTERM ends it cleanly.

use std::time::Duration;

use rivulet_tests::aria2::Aria2Leecher;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr, own_loopback};
use rivulet_tests::qbittorrent::QbLeecher;
use rivulet_tests::rivulet::{self, Running};
use rivulet_tests::tracker::Tracker;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(180);

/// Starts `rivulet seed` on a private copy of the fixture and waits until the tracker lists it.
fn start_seed(work: &WorkDir, fixture: &Fixture, tracker: &Tracker) -> Running {
    let data = work.subdir("data");
    fixture.copy_payload(&data);
    let torrent = fixture.torrent(&tracker.http_url(), "http", work.path());
    let listen = free_addr(LOCALHOST);
    let seed = rivulet::seed(
        work.path(),
        &torrent,
        &data,
        listen,
        &work.join("seed-events.jsonl"),
    );
    tracker.wait_lists(&fixture.meta.info_hash, listen, Duration::from_secs(30));
    seed
}

#[test]
fn aria2_downloads_from_rivulet_seed() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("seed-aria2");
    let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
    let mut seed = start_seed(&work, fixture, &tracker);
    let torrent = fixture.torrent(&tracker.http_url(), "leech", work.path());
    let out = work.subdir("out");
    let mut leecher = Aria2Leecher::start(work.path(), &torrent, &out, own_loopback());
    leecher.wait_done(BOUND);
    assert_same_files(fixture, &out, "aria2 leecher of rivulet seed");
    seed.proc.assert_running("serving");
    seed.terminate(Duration::from_secs(15));
}

#[test]
fn qbittorrent_downloads_from_rivulet_seed() {
    let fixture = Fixture::single_small();
    let work = WorkDir::new("seed-qbittorrent");
    let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
    let mut seed = start_seed(&work, fixture, &tracker);
    let torrent = fixture.torrent(&tracker.http_url(), "leech", work.path());
    let out = work.subdir("out");
    let mut qb = QbLeecher::start(work.path(), &torrent, &out, own_loopback());
    qb.wait_done(BOUND);
    assert_same_files(fixture, &out, "qBittorrent leecher of rivulet seed");
    seed.proc.assert_running("serving");
    seed.terminate(Duration::from_secs(15));
}
