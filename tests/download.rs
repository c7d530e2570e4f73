//! `rivulet download` from a real aria2 seeder found through opentracker, over HTTP and UDP
//! announce: every file's SHA-1 matches and the events log tells the story.

use std::time::Duration;

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::rivulet::Download;
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(180);

fn download(test: &str, fixture: &'static Fixture, proto: Announce) {
    let work = WorkDir::new(test);
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, proto);
    let out = work.subdir("out");
    let events_path = work.join("events.jsonl");
    let mut run = Download::new(&torrent, &out)
        .listen(free_addr(LOCALHOST))
        .events(&events_path)
        .spawn(work.path(), "download");
    run.wait_success(BOUND);
    assert_same_files(fixture, &out, "rivulet download");

    let events = run.events();
    let pieces = fixture.meta.piece_count();
    assert_eq!(
        events.verified().len() as u32,
        pieces,
        "one piece_verified per piece; last events:\n{}",
        events.tail(10)
    );
    assert!(events.verified().iter().all(|&p| p < pieces));
    for kind in ["started", "complete"] {
        assert!(events.has(kind), "no `{kind}` event:\n{}", events.tail(10));
    }
    let url = swarm.tracker.url(proto);
    assert!(
        events
            .of("tracker_reply")
            .any(|l| l["url"] == url.as_str() && l["peers"].as_u64() >= Some(1)),
        "no tracker_reply from {url} with peers:\n{}",
        events.tail(30)
    );
    assert!(
        events
            .addrs("peer_connected")
            .contains(&swarm.seeder.addr.to_string()),
        "never connected to the aria2 seeder {}",
        swarm.seeder.addr
    );
}

#[test]
fn single_file_over_http_announce() {
    download("download-single-http", Fixture::single(), Announce::Http);
}

#[test]
fn single_file_over_udp_announce() {
    download("download-single-udp", Fixture::single(), Announce::Udp);
}

#[test]
fn multi_file_over_http_announce() {
    download("download-multi-http", Fixture::multi(), Announce::Http);
}

#[test]
fn multi_file_over_udp_announce() {
    download("download-multi-udp", Fixture::multi(), Announce::Udp);
}

#[test]
fn small_torrent_with_short_last_piece() {
    download("download-small", Fixture::single_small(), Announce::Http);
}
