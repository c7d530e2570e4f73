//! Magnet links against real peers: an aria2 seeder found through opentracker serves the
//! metadata (BEP 9), so `rivulet download 'magnet:…'` and `rivulet info 'magnet:…' --save`
//! work with no .torrent file given; the metadata is cached for the next time; peers that lie
//! about the metadata are dropped and the metadata fetched from the honest seeder.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use rivulet_tests::aria2::{Aria2Leecher, SeederOptions};
use rivulet_tests::fake_peer::{FakePeer, Misbehaviour};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::metadata_liar::{MetadataLiar, MetadataLie};
use rivulet_tests::mount::MountCmd;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::rivulet::{self, Download, Finished};
use rivulet_tests::swarm::Swarm;
use rivulet_tests::torrent::TorrentInfo;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(120);
/// The liar's own loopback address: bans are per IP, and the honest seeder is on 127.0.0.2.
const LIAR_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
/// Where an aria2 leecher connects from; the only peer there, so its connection is told apart.
const LEECHER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// `rivulet info LINK --save FILE` with its own state directory and event log.
fn info_save(work: &WorkDir, tag: &str, link: &str, save: &Path, state: &Path) -> Finished {
    let args: Vec<OsString> = vec![
        "info".into(),
        link.into(),
        "--save".into(),
        save.into(),
        "--state-dir".into(),
        state.into(),
        "--listen".into(),
        free_addr(LOCALHOST).to_string().into(),
        "--events".into(),
        work.path().join(format!("{tag}.events.jsonl")).into(),
    ];
    rivulet::run(work.path(), tag, &args, BOUND)
}

fn assert_saved_torrent_matches(fixture: &Fixture, saved: &Path) {
    let got = TorrentInfo::read(saved);
    assert_eq!(
        got.info_hash, fixture.meta.info_hash,
        "saved torrent names another swarm"
    );
    assert_eq!(got.name, fixture.meta.name);
    assert_eq!(got.total_length, fixture.meta.total_length);
}

#[test]
fn a_magnet_link_with_a_tracker_downloads_byte_identical_with_no_torrent_file() {
    let work = WorkDir::new("magnet-download");
    let fixture = Fixture::multi_small();
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let link = fixture.magnet(&swarm.tracker.url(Announce::Http), &[]);
    let out = work.subdir("out");
    let state = work.subdir("state");
    let events_path = work.join("events.jsonl");
    let mut run = Download::new(Path::new(&link), &out)
        .listen(free_addr(LOCALHOST))
        .events(&events_path)
        .state_dir(&state)
        .spawn(work.path(), "download");
    run.wait_success(BOUND);
    assert_same_files(fixture, &out, "rivulet download of a magnet link");
    let events = run.events();
    for kind in ["metadata_fetching", "metadata_fetched", "complete"] {
        assert!(events.has(kind), "no `{kind}` event:\n{}", events.tail(20));
    }
    let cached = state
        .join("metadata")
        .join(format!("{}.torrent", fixture.info_hash_hex()));
    assert_saved_torrent_matches(fixture, &cached);
}

#[test]
fn info_of_a_magnet_link_saves_the_torrent_and_answers_from_the_cache_next_time() {
    let work = WorkDir::new("magnet-info");
    let fixture = Fixture::multi();
    let state = work.subdir("state");
    let saved = work.join("saved.torrent");
    let link = {
        let swarm = Swarm::start(&work, fixture, SeederOptions::default());
        let link = fixture.magnet(&swarm.tracker.url(Announce::Udp), &[]);
        let run = info_save(&work, "info-fetch", &link, &saved, &state);
        assert!(run.status.success(), "info failed: {}", run.stderr);
        assert!(
            run.stdout.contains(&fixture.info_hash_hex()),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains(fixture.name()), "{}", run.stdout);
        link
    };
    assert_saved_torrent_matches(fixture, &saved);
    // The seeder and tracker are gone: only the cache can answer now.
    let again = work.join("again.torrent");
    let run = info_save(&work, "info-cached", &link, &again, &state);
    assert!(
        run.status.success(),
        "info from the cache failed: {}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(&saved).unwrap(),
        std::fs::read(&again).unwrap(),
        "the cached metadata differs from the fetched one"
    );
}

#[test]
fn a_malformed_magnet_link_is_refused_in_one_line() {
    let work = WorkDir::new("magnet-malformed");
    let run = rivulet::info(work.path(), Path::new("magnet:?xt=urn:btih:123"));
    run.assert_clean_failure("malformed magnet link");
    assert!(run.stderr.contains("info-hash"), "{}", run.stderr);
}

fn liar_is_rejected(tag: &str, lie: MetadataLie) {
    let work = WorkDir::new(tag);
    let fixture = Fixture::multi_small();
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);
    let info = rivulet_core::metainfo::Metainfo::from_file(&torrent)
        .unwrap()
        .info_bytes
        .to_vec();
    let liar = MetadataLiar::start(LIAR_IP, fixture.meta.info_hash, info, lie);
    // The liar in `x.pe` is dialed at once, before the tracker names the honest seeder.
    let link = fixture.magnet(&swarm.tracker.url(Announce::Http), &[liar.addr]);
    let saved = work.join("saved.torrent");
    let run = info_save(&work, "info", &link, &saved, &work.subdir("state"));
    assert!(run.status.success(), "info failed: {}", run.stderr);
    assert_saved_torrent_matches(fixture, &saved);
    let record = liar.record();
    assert!(record.connections >= 1, "the liar was never dialed");
    let events = rivulet_tests::events::Events::read(&work.join("info.events.jsonl"));
    let dropped = events.drop_reasons(&[LIAR_IP.into()]);
    if lie == MetadataLie::Endless || record.requests > 0 {
        assert!(
            !dropped.is_empty() || events.addrs("peer_banned").contains(&liar.addr.to_string()),
            "the liar ({record:?}) was neither dropped nor banned:\n{}",
            events.tail(30)
        );
    }
}

#[test]
fn metadata_with_wrong_bytes_is_rejected_and_fetched_from_an_honest_peer() {
    liar_is_rejected("magnet-liar-bytes", MetadataLie::WrongBytes);
}

#[test]
fn metadata_of_the_wrong_size_is_rejected_and_fetched_from_an_honest_peer() {
    liar_is_rejected("magnet-liar-size", MetadataLie::WrongSize);
}

#[test]
fn endless_metadata_is_refused_before_allocation_and_fetched_from_an_honest_peer() {
    liar_is_rejected("magnet-liar-endless", MetadataLie::Endless);
}

#[test]
fn a_rivulet_seed_serves_its_metadata_to_aria2_fetching_a_magnet_link() {
    let work = WorkDir::new("magnet-serve");
    let fixture = Fixture::multi_small();
    let (tracker, mut seed, addr) = rivulet::listed_seed(&work, fixture, &[]);
    let link = fixture.magnet(&tracker.http_url(), &[]);
    let out = work.subdir("aria2-out");
    let mut leecher = Aria2Leecher::start_magnet(work.path(), &link, &out, LEECHER_IP);
    leecher.wait_done(BOUND);
    assert_same_files(fixture, &out, "aria2 from a magnet link served by rivulet");
    seed.proc.assert_running("seeding");
    assert!(
        seed.events().of("peer_connected").any(|l| l["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.3:"))),
        "aria2 never connected to the rivulet seed at {addr}"
    );
}

#[test]
fn a_magnet_link_mounts_and_reads_byte_identical() {
    let work = WorkDir::new("magnet-mount");
    let fixture = Fixture::multi_small();
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let link = fixture.magnet(&swarm.tracker.url(Announce::Http), &[]);
    let mount = MountCmd::new(Path::new(&link), &work.subdir("mnt"))
        .data(&work.subdir("data"))
        .state_dir(&work.subdir("state"))
        .listen(free_addr(LOCALHOST))
        .spawn(work.path(), "mount");
    assert_same_files(fixture, &mount.dir, "files read through a magnet mount");
}

#[test]
fn a_peer_without_the_extension_protocol_does_not_stall_the_metadata_fetch() {
    let work = WorkDir::new("magnet-no-extensions");
    let fixture = Fixture::multi_small();
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    // A BEP 3-only peer (no reserved bits), dialed first: it has the data but cannot send
    // metadata.
    let old = FakePeer::start(LIAR_IP, fixture, Misbehaviour::Honest);
    let link = fixture.magnet(&swarm.tracker.url(Announce::Http), &[old.addr]);
    let saved = work.join("saved.torrent");
    let run = info_save(&work, "info", &link, &saved, &work.subdir("state"));
    assert!(run.status.success(), "info failed: {}", run.stderr);
    assert_saved_torrent_matches(fixture, &saved);
    assert!(
        old.record().handshakes >= 1,
        "the BEP 3-only peer was never dialed"
    );
}

#[test]
fn magnet_links_posted_to_a_server_or_dropped_in_its_watch_folder_are_fetched_and_mounted() {
    let work = WorkDir::new("magnet-serve");
    let (posted, dropped) = (Fixture::multi_small(), Fixture::single());
    let posted_swarm = Swarm::start(&work, posted, SeederOptions::default());
    let dropped_swarm = Swarm::start(&work, dropped, SeederOptions::default());
    let watch = work.subdir("watch");
    let mnt = work.subdir("mnt");
    let mut serve = rivulet_tests::serve::Serve::start(
        &work,
        "serve",
        &[
            "--watch",
            watch.to_str().unwrap(),
            "--mount",
            mnt.to_str().unwrap(),
        ],
    );
    let link = posted.magnet(&posted_swarm.tracker.url(Announce::Http), &[]);
    let answer = serve.post("/api/torrents", link.as_bytes());
    assert!(
        [201, 202].contains(&answer.status),
        "POST of a magnet link: {} {}",
        answer.status,
        answer.body
    );
    assert_eq!(answer.json()["info_hash"], posted.info_hash_hex().as_str());
    std::fs::write(
        watch.join("dropped.magnet"),
        dropped.magnet(&dropped_swarm.tracker.url(Announce::Http), &[]) + "\n",
    )
    .unwrap();
    for fixture in [posted, dropped] {
        rivulet_tests::process::wait_for(BOUND, "the magnet's torrent in the mount", || {
            mnt.join(fixture.name()).exists()
        });
        assert_same_files(fixture, &mnt, "a magnet link's files through serve --mount");
    }
    let listed = serve.get("/api/torrents").json();
    let files = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["files"].as_array().map_or(0, Vec::len))
        .sum::<usize>();
    assert_eq!(
        files,
        posted.files.len() + dropped.files.len(),
        "both torrents listed with their files: {listed}"
    );
    serve.proc_mut().signal(libc::SIGTERM);
    assert!(serve.proc_mut().wait_exit(BOUND).success());
}
