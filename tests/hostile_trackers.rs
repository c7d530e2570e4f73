//! Hostile trackers in the first tiers, the real opentracker in the last: garbage replies, an
//! HTML error page, a tracker that never answers, a UDP tracker answering with the wrong
//! transaction id, and one listing thousands of dead peers. The download completes from the
//! honest swarm, every hostile tracker shows up in `tracker_error` events, and none of them is
//! stormed: each gets a handful of announces over the run, not one per tick.

use std::time::{Duration, Instant};

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::hostile_tracker::{HostileTracker, Hostility};
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::rivulet::Download;
use rivulet_tests::swarm::Swarm;
use rivulet_tests::torrent::set_tiers;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

/// The engine's announce timeout (core/src/torrent/announce.rs) plus slack: a tracker that
/// never answers has failed by then.
const HANG_REPORTED: Duration = Duration::from_secs(15 + 5);
/// Announces one tracker may get in that time: started, a retry after the first backoff, the
/// `completed` announce; a storm would be dozens.
const MAX_ANNOUNCES: u32 = 4;

#[test]
fn hostile_first_tiers_do_not_stop_the_download_nor_get_stormed() {
    let fixture = Fixture::multi_small();
    let work = WorkDir::new("hostile-trackers");
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let hostile: Vec<(Hostility, HostileTracker)> = [
        Hostility::Garbage,
        Hostility::HtmlError,
        Hostility::Hang,
        Hostility::UdpWrongTransaction,
    ]
    .into_iter()
    .map(|k| (k, HostileTracker::start(k)))
    .collect();
    let torrent = swarm.torrent(&work, Announce::Http);
    let mut tiers: Vec<Vec<String>> = hostile.iter().map(|(_, t)| vec![t.url.clone()]).collect();
    tiers.push(vec![swarm.tracker.http_url()]);
    set_tiers(&torrent, &tiers);

    let out = work.subdir("out");
    let started = Instant::now();
    let mut run = Download::new(&torrent, &out)
        .listen(free_addr(LOCALHOST))
        .events(&work.join("events.jsonl"))
        .seed()
        .spawn(work.path(), "download");
    run.wait_events(Duration::from_secs(60), "the download to complete", |e| {
        e.has("complete")
    });
    assert_same_files(fixture, &out, "download behind hostile trackers");
    let took = started.elapsed();
    // Keep seeding until the hanging tracker has timed out, counting announces meanwhile.
    run.wait_events(HANG_REPORTED, "every hostile tracker to be reported", |e| {
        hostile
            .iter()
            .all(|(_, t)| e.of("tracker_error").any(|l| l["url"] == t.url.as_str()))
    });
    let events = run.events();
    for (kind, t) in &hostile {
        let errors: Vec<&str> = events
            .of("tracker_error")
            .filter(|l| l["url"] == t.url.as_str())
            .filter_map(|l| l["error"].as_str())
            .collect();
        eprintln!("{kind:?}: {} announces, errors {errors:?}", t.requests());
        assert!(!errors.is_empty(), "{kind:?}: no tracker_error");
        assert!(
            errors.iter().all(|e| !e.is_empty() && !e.contains('\n')),
            "{kind:?}: tracker errors must be one line: {errors:?}"
        );
        let n = t.requests();
        let limit = if *kind == Hostility::UdpWrongTransaction {
            // BEP 15 retransmits within one announce; count announces, not datagrams, by
            // allowing each a few.
            MAX_ANNOUNCES * 8
        } else {
            MAX_ANNOUNCES
        };
        assert!(
            n <= limit,
            "{kind:?} got {n} requests in {:?}",
            started.elapsed()
        );
    }
    assert!(
        events
            .of("tracker_reply")
            .any(|l| l["url"] == swarm.tracker.http_url().as_str()),
        "the honest tracker never answered"
    );
    eprintln!("download complete after {took:?}");
    run.terminate(Duration::from_secs(20));
}

#[test]
fn a_huge_list_of_dead_peers_does_not_hide_the_honest_seeder() {
    let fixture = Fixture::multi_small();
    let work = WorkDir::new("hostile-tracker-huge");
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let huge = HostileTracker::start(Hostility::HugePeerList(50_000));
    let torrent = swarm.torrent(&work, Announce::Http);
    set_tiers(
        &torrent,
        &[vec![huge.url.clone()], vec![swarm.tracker.http_url()]],
    );
    let out = work.subdir("out");
    let started = Instant::now();
    let mut run = Download::new(&torrent, &out)
        .listen(free_addr(LOCALHOST))
        .events(&work.join("events.jsonl"))
        .spawn(work.path(), "download");
    run.wait_success(Duration::from_secs(120));
    assert_same_files(fixture, &out, "download next to a huge peer list");
    let events = run.events();
    let listed: Vec<u64> = events
        .of("tracker_reply")
        .filter(|l| l["url"] == huge.url.as_str())
        .filter_map(|l| l["peers"].as_u64())
        .collect();
    eprintln!(
        "huge list: replies with {listed:?} peers, {} announces, done in {:?}",
        huge.requests(),
        started.elapsed()
    );
    assert!(huge.requests() <= MAX_ANNOUNCES);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the honest seeder took {:?} to be found among the dead peers",
        started.elapsed()
    );
}
