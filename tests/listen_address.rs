//! `--listen` on one address (a VPN, one interface): every outgoing connection leaves from it,
//! so that trackers and peers see the address we are reachable on. Each client here listens on a
//! loopback address of its own, while the tracker and the seeder's route back would otherwise
//! make the kernel pick 127.0.0.1, where nobody listens.
//!
//! - A `rivulet seed` announces over HTTP and over UDP: opentracker lists it at its listen
//!   address, and an aria2 leecher that knows only the tracker downloads the file from it.
//! - A `rivulet download` dials an aria2 seeder: the seeder sees every connection come from the
//!   download's listen address, for a `.torrent` and for a magnet link (whose metadata fetch
//!   dials first).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rivulet_tests::aria2::{Aria2Leecher, SeederOptions};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{free_addr, own_loopback};
use rivulet_tests::rivulet::{self, Download};
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::{Announce, Tracker};
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(180);

fn seed_is_found_at_its_listen_address(test: &str, proto: Announce) {
    let fixture = Fixture::single_small();
    let hash = fixture.meta.info_hash;
    let work = WorkDir::new(test);
    let tracker = Tracker::start(&work.subdir("tracker"), &[hash]);
    let data = work.subdir("data");
    fixture.copy_payload(&data);
    let torrent = fixture.torrent(&tracker.url(proto), proto.tag(), work.path());
    let listen = free_addr(own_loopback());
    let mut seed = rivulet::seed(
        work.path(),
        &torrent,
        &data,
        listen,
        &work.join("seed-events.jsonl"),
    );
    seed.wait_events(Duration::from_secs(60), "the seed to listen", |e| {
        e.has("listening")
    });

    // opentracker records an announce's source address, not anything the client says.
    tracker.wait_lists(&hash, listen, Duration::from_secs(30));
    let listed = tracker.peers(&hash);
    assert_eq!(listed, vec![listen], "the tracker lists {listed:?}");

    let out = work.subdir("out");
    let leecher_ip = own_loopback();
    let mut leecher = Aria2Leecher::start(work.path(), &torrent, &out, leecher_ip);
    leecher.wait_done(BOUND);
    assert_same_files(
        fixture,
        &out,
        "aria2 leecher of a seed listening on one address",
    );
    let events = seed.events();
    assert!(
        events
            .addrs("peer_connected")
            .iter()
            .filter_map(|a| a.parse::<SocketAddr>().ok())
            .any(|a| a.ip() == IpAddr::V4(leecher_ip)),
        "the seed never served the leecher at {leecher_ip}:\n{}",
        events.tail(20)
    );
    seed.proc.assert_running("serving");
    seed.terminate(Duration::from_secs(15));
}

#[test]
fn http_announce_leaves_from_the_listen_address() {
    seed_is_found_at_its_listen_address("listen-address-http", Announce::Http);
}

#[test]
fn udp_announce_leaves_from_the_listen_address() {
    seed_is_found_at_its_listen_address("listen-address-udp", Announce::Udp);
}

fn dials_leave_from_the_listen_address(test: &str, magnet: bool) {
    let fixture = Fixture::single_small();
    let work = WorkDir::new(test);
    let opts = SeederOptions {
        log_peers: true,
        ..SeederOptions::default()
    };
    let swarm = Swarm::start(&work, fixture, opts);
    let target = if magnet {
        PathBuf::from(format!(
            "magnet:?xt=urn:btih:{}&tr={}",
            fixture.info_hash_hex(),
            utf8_percent_encode(&swarm.tracker.http_url(), NON_ALPHANUMERIC)
        ))
    } else {
        swarm.torrent(&work, Announce::Http)
    };
    let out = work.subdir("out");
    let listen = free_addr(own_loopback());
    let mut run = Download::new(&target, &out)
        .listen(listen)
        .events(&work.join("events.jsonl"))
        .state_dir(&work.subdir("state"))
        .no_dht()
        .spawn(work.path(), "download");
    run.wait_success(BOUND);
    assert_same_files(fixture, &out, "rivulet download listening on one address");
    if magnet {
        let events = run.events();
        assert!(events.has("metadata_fetched"), "{}", events.tail(20));
    }

    // aria2 at times dials the address the tracker lists for itself (then bans it): not ours.
    let incoming: Vec<SocketAddr> = swarm
        .seeder
        .incoming_peers()
        .into_iter()
        .filter(|a| a.ip() != swarm.seeder.addr.ip())
        .collect();
    assert!(
        !incoming.is_empty() && incoming.iter().all(|a| a.ip() == listen.ip()),
        "the seeder saw connections from {incoming:?}, not only from {}",
        listen.ip()
    );
}

#[test]
fn peer_dials_leave_from_the_listen_address() {
    dials_leave_from_the_listen_address("listen-address-dial", false);
}

#[test]
fn metadata_fetch_dials_leave_from_the_listen_address() {
    dials_leave_from_the_listen_address("listen-address-magnet", true);
}
