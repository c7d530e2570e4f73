//! Resource limits under a crowd: 200 peers dial a seeding rivulet at once while a real aria2
//! leecher downloads from it. The seed never holds more than `max_peers` registered peers (nor
//! more than `max_peers` half-open handshakes), its resident memory and open file descriptors
//! stay within stated bounds, and the honest leecher gets a correct copy.

use std::net::SocketAddr;
use std::time::Duration;

use rivulet_tests::aria2::Aria2Leecher;
use rivulet_tests::events::Events;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr, own_loopback};
use rivulet_tests::proc_stats::{Sampler, fd_count};
use rivulet_tests::raw_peer::RawPeer;
use rivulet_tests::rivulet;
use rivulet_tests::tracker::Tracker;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::wire;
use rivulet_tests::workdir::WorkDir;

const CROWD: usize = 200;
const MAX_PEERS: usize = 20;
/// Stated bounds for a seed of an 18 MiB torrent with `max_peers` 20 under the crowd.
const RSS_BOUND_MIB: u64 = 120;
/// Registered peers plus half-open handshakes, each one socket, plus files, listener, logs.
const FD_BOUND: u64 = 2 * MAX_PEERS as u64 + 32;

/// The most peers registered at once, replayed from peer_connected / peer_dropped events.
fn peak_connected(events: &Events) -> usize {
    let (mut now, mut peak) = (0i64, 0i64);
    for l in &events.lines {
        match l["event"].as_str() {
            Some("peer_connected") => now += 1,
            Some("peer_dropped") => now -= 1,
            _ => continue,
        }
        peak = peak.max(now);
    }
    peak.max(0) as usize
}

/// One member of the crowd: handshake, interested, one request, read whatever comes for a
/// while, then leave. Returns whether the seed answered the handshake.
fn crowd_member(seed: SocketAddr, info_hash: [u8; 20], stay: Duration) -> bool {
    let Ok(mut p) = RawPeer::connect(seed) else {
        return false;
    };
    if p.handshake(&info_hash, Duration::from_secs(12)).is_err() {
        return false;
    }
    let _ = p.send(&wire::message(wire::INTERESTED, &[]));
    let _ = p.send(&wire::request(0, 0, 16 << 10));
    let _ = p.wait_closed(stay);
    true
}

#[test]
fn a_crowd_of_200_peers_stays_within_max_peers_memory_and_fds() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("limits-crowd");
    let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
    let data = work.subdir("data");
    fixture.copy_payload(&data);
    let config = work.join("config.toml");
    // Slow enough that the leecher is still downloading while the crowd arrives.
    std::fs::write(&config, "upload_limit_kib = 3072\n").expect("write config");
    let torrent = fixture.torrent(&tracker.http_url(), "http", work.path());
    let addr = free_addr(LOCALHOST);
    let max_peers = MAX_PEERS.to_string();
    let mut seed = rivulet::seed_with(
        work.path(),
        &torrent,
        &data,
        addr,
        &work.join("seed-events.jsonl"),
        &[
            "--max-peers",
            &max_peers,
            "--config",
            config.to_str().expect("utf-8 path"),
        ],
    );
    seed.wait_listening();
    let idle_fds = fd_count(seed.proc.pid()).expect("seed fds");
    let sampler = Sampler::start(seed.proc.pid());
    tracker.wait_lists(&fixture.meta.info_hash, addr, Duration::from_secs(30));

    let out = work.subdir("out");
    let leech_torrent = fixture.torrent(&tracker.http_url(), "leech", work.path());
    let mut leecher = Aria2Leecher::start(work.path(), &leech_torrent, &out, own_loopback());
    seed.wait_events(Duration::from_secs(60), "aria2 to connect", |e| {
        e.has("peer_connected")
    });

    let info_hash = fixture.meta.info_hash;
    let crowd: Vec<_> = (0..CROWD)
        .map(|_| std::thread::spawn(move || crowd_member(addr, info_hash, Duration::from_secs(4))))
        .collect();
    let answered = crowd
        .into_iter()
        .map(|t| t.join().expect("crowd thread"))
        .filter(|&a| a)
        .count();

    leecher.wait_done(Duration::from_secs(180));
    assert_same_files(fixture, &out, "aria2 leecher of a seed under a crowd");
    seed.proc.assert_running("serving the crowd");
    let events = seed.events();
    let peak = peak_connected(&events);
    eprintln!(
        "crowd of {CROWD}: {answered} handshakes answered, peak {peak} registered peers, \
         peak RSS {} MiB, peak fds {} (idle {idle_fds})",
        sampler.peak_rss_mib(),
        sampler.peak_fds()
    );
    assert!(
        peak <= MAX_PEERS,
        "the seed registered {peak} peers at once with --max-peers {MAX_PEERS}"
    );
    assert!(
        sampler.peak_rss_mib() <= RSS_BOUND_MIB,
        "the seed reached {} MiB resident (bound {RSS_BOUND_MIB})",
        sampler.peak_rss_mib()
    );
    assert!(
        sampler.peak_fds() <= FD_BOUND,
        "the seed held {} fds (bound {FD_BOUND}, idle {idle_fds})",
        sampler.peak_fds()
    );
    seed.terminate(Duration::from_secs(15));
}
