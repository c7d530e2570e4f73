//! The trackerless swarm: a torrent with no tracker at all, whose peers are found only through
//! a DHT of real nodes on loopback (libtorrent through python3-libtorrent, aria2, rivulet).
//!
//! Every swarm here has a libtorrent node others join through ("router") and a seeder that
//! announced itself to it: a node never lists its own torrents to itself, so one node alone
//! cannot show a lookup.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rivulet_core::metainfo::Metainfo;
use rivulet_core::session::Mode;

use rivulet_tests::aria2::Aria2Leecher;
use rivulet_tests::dht::{
    krpc_ping, private_trackerless_torrent, send_garbage, trackerless_torrent,
};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::libtorrent::{LibtorrentNode, Seed};
use rivulet_tests::netns::assert_isolated_network;
use rivulet_tests::ports::{free_addr, own_loopback};
use rivulet_tests::rivulet::{Download, Running, seed_with};
use rivulet_tests::session::TestSession;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(90);
const ANNOUNCED: Duration = Duration::from_secs(30);

/// A libtorrent router and a libtorrent seeder of `fixture` that announced itself to it.
fn libtorrent_swarm(
    work: &WorkDir,
    fixture: &Fixture,
    torrent: &Path,
) -> (LibtorrentNode, LibtorrentNode) {
    let mut router = LibtorrentNode::start(work.path(), own_loopback(), None, None);
    let seeder = LibtorrentNode::start(
        work.path(),
        own_loopback(),
        Some(router.addr),
        Some(Seed {
            torrent,
            data: &fixture.root,
        }),
    );
    router.wait_announced(&fixture.info_hash_hex(), seeder.addr, ANNOUNCED);
    (router, seeder)
}

/// `rivulet download` of `torrent` into `work/<tag>`, state in `state`, with `flags` applied.
fn leecher(
    work: &WorkDir,
    torrent: &Path,
    tag: &str,
    state: &Path,
    flags: impl FnOnce(Download) -> Download,
) -> Running {
    let cmd = Download::new(torrent, &work.subdir(tag))
        .listen(free_addr(own_loopback()))
        .state_dir(state)
        .events(&work.join(&format!("{tag}-events.jsonl")));
    flags(cmd).spawn(work.path(), tag)
}

fn assert_connected_to(run: &Running, peer: SocketAddr, who: &str) {
    let events = run.events();
    assert!(
        events.addrs("peer_connected").contains(&peer.to_string()),
        "{who} never connected to {peer}:\n{}",
        events.tail(20)
    );
    assert!(
        events
            .of("dht_peers")
            .any(|e| e["peers"].as_u64() >= Some(1)),
        "{who} has no dht_peers event with peers:\n{}",
        events.tail(20)
    );
}

#[test]
fn a_trackerless_torrent_downloads_from_a_seeder_found_only_through_the_dht() {
    assert_isolated_network();
    let work = WorkDir::new("dht-libtorrent-seeder");
    let fixture = Fixture::multi_small();
    let torrent = trackerless_torrent(fixture, work.path());
    let (router, seeder) = libtorrent_swarm(&work, fixture, &torrent);

    // Side by side: the same torrent with the DHT off has no way to find anyone.
    let state = work.subdir("state");
    let mut found = leecher(&work, &torrent, "with-dht", &state, |d| {
        d.dht_bootstrap(router.addr)
    });
    let mut blind = leecher(
        &work,
        &torrent,
        "no-dht",
        &work.subdir("state-no-dht"),
        |d| d.dht_bootstrap(router.addr).no_dht(),
    );
    found.wait_success(BOUND);
    assert_same_files(fixture, &work.join("with-dht"), "rivulet with the DHT");
    assert_connected_to(&found, seeder.addr, "the leecher with the DHT");

    blind
        .proc
        .assert_running("downloading with no peer to find");
    let events = blind.events();
    for kind in [
        "dht_started",
        "dht_peers",
        "peer_connected",
        "piece_verified",
    ] {
        assert!(
            !events.has(kind),
            "--no-dht still had a `{kind}` event:\n{}",
            events.tail(20)
        );
    }
    // An interrupted download exits non-zero; dropping `blind` kills it.
    drop(blind);

    // The routing table outlives the run: it lists the router it joined through.
    let nodes = std::fs::read_to_string(state.join("dht_nodes")).expect("dht_nodes written");
    assert!(
        nodes.lines().any(|l| l == router.addr.to_string()),
        "{} not in the saved routing table:\n{nodes}",
        router.addr
    );
}

#[test]
fn the_routing_table_saved_by_one_run_bootstraps_the_next() {
    assert_isolated_network();
    let work = WorkDir::new("dht-saved-table");
    let fixture = Fixture::multi_small();
    let torrent = trackerless_torrent(fixture, work.path());
    let (router, seeder) = libtorrent_swarm(&work, fixture, &torrent);
    let state = work.subdir("state");

    let mut first = leecher(&work, &torrent, "first", &state, |d| {
        d.dht_bootstrap(router.addr)
    });
    first.wait_success(BOUND);
    assert!(state.join("dht_nodes").exists(), "no routing table saved");

    // Only a bootstrap node nobody listens on: the saved table is the way in.
    let nobody = free_addr(own_loopback());
    let mut second = leecher(&work, &torrent, "second", &state, |d| {
        d.dht_bootstrap(nobody)
    });
    second.wait_success(BOUND);
    assert_same_files(fixture, &work.join("second"), "the second run");
    assert_connected_to(&second, seeder.addr, "the second run");
    let events = second.events();
    assert!(
        events
            .of("dht_started")
            .any(|e| e["bootstrap"].as_u64() >= Some(2)),
        "the second run did not join through saved nodes:\n{}",
        events.tail(20)
    );
}

#[test]
fn a_rivulet_seeder_announces_itself_on_the_dht_and_aria2_downloads_from_it() {
    assert_isolated_network();
    let work = WorkDir::new("dht-rivulet-seeder");
    let fixture = Fixture::multi_small();
    let torrent = trackerless_torrent(fixture, work.path());
    let mut router = LibtorrentNode::start(work.path(), own_loopback(), None, None);

    let addr = free_addr(own_loopback());
    let bootstrap = router.addr.to_string();
    let mut seed = seed_with(
        work.path(),
        &torrent,
        &fixture.root,
        addr,
        &work.join("seed-events.jsonl"),
        &[
            "--dht-bootstrap",
            &bootstrap,
            "--state-dir",
            &work.subdir("seed-state").display().to_string(),
        ],
    );
    seed.wait_events(Duration::from_secs(30), "the seed's DHT node", |e| {
        e.has("dht_started")
    });
    // The node shares the listener's port number (UDP), and shrugs off junk.
    assert!(
        seed.events()
            .of("dht_started")
            .any(|e| e["addr"] == addr.to_string()),
        "the DHT node is not on {addr}:\n{}",
        seed.events().tail(10)
    );
    send_garbage(addr, 60);
    assert!(
        krpc_ping(addr, Duration::from_secs(5)),
        "the seed's DHT node stopped answering after malformed messages"
    );
    router.wait_announced(&fixture.info_hash_hex(), addr, ANNOUNCED);

    let out = work.subdir("aria2-out");
    let mut aria2 =
        Aria2Leecher::start_dht(work.path(), &torrent, &out, own_loopback(), router.addr);
    aria2.wait_done(BOUND);
    assert_same_files(fixture, &out, "aria2 through the DHT");
    seed.proc.assert_running("seeding");
    assert!(
        seed.events()
            .of("peer_connected")
            .any(|e| e["addr"].as_str().is_some_and(|a| !a.is_empty())),
        "aria2 never connected to the rivulet seeder"
    );
    seed.terminate(Duration::from_secs(20));
}

#[test]
fn a_private_torrent_is_never_looked_up_on_the_dht() {
    assert_isolated_network();
    let work = WorkDir::new("dht-private");
    let fixture = Fixture::multi_small();
    let mut router = LibtorrentNode::start(work.path(), own_loopback(), None, None);
    let s = TestSession::start_with(
        &work,
        "session",
        &[
            ("dht", "true".to_string()),
            ("dht_bootstrap", router.addr.to_string()),
        ],
    );
    let read = |path: &Path| {
        let bytes = std::fs::read(path).expect("read torrent");
        Arc::new(Metainfo::from_bytes(&bytes).expect("parse torrent"))
    };
    let private = read(&private_trackerless_torrent(fixture, work.path()));
    let public = read(&trackerless_torrent(fixture, work.path()));
    assert!(private.private && !public.private);
    // The private one first: had it been looked up, the router would have seen it first.
    let mode = Mode::Download { seed: false };
    s.add(&private, &work.subdir("private"), mode, &[]);
    s.add(&public, &work.subdir("public"), mode, &[]);

    router.wait_announced(&public.info_hash.hex(), s.listen_addr(), ANNOUNCED);
    let private_hash = private.info_hash.hex();
    let leaked: Vec<_> = router
        .events()
        .into_iter()
        .filter(|e| e["info_hash"] == private_hash.as_str())
        .collect();
    assert!(
        leaked.is_empty(),
        "the private torrent reached the DHT: {leaked:?}"
    );
    s.shutdown(Duration::from_secs(10));
}

#[test]
fn a_magnet_link_with_no_tracker_fetches_its_metadata_and_data_from_a_seeder_found_through_the_dht()
{
    assert_isolated_network();
    let work = WorkDir::new("dht-magnet");
    let fixture = Fixture::multi_small();
    let torrent = trackerless_torrent(fixture, work.path());
    let (router, seeder) = libtorrent_swarm(&work, fixture, &torrent);
    // The link alone: no tracker, no peer address, no .torrent anywhere for the leecher.
    let link = format!("magnet:?xt=urn:btih:{}", fixture.info_hash_hex());
    let mut run = leecher(
        &work,
        Path::new(&link),
        "magnet",
        &work.subdir("state"),
        |d| d.dht_bootstrap(router.addr),
    );
    run.wait_success(BOUND);
    assert_same_files(fixture, &work.join("magnet"), "a trackerless magnet link");
    assert!(
        run.events().has("metadata_fetched"),
        "no metadata_fetched event:\n{}",
        run.events().tail(20)
    );
    assert_connected_to(&run, seeder.addr, "the magnet leecher");
}
