//! Pieces of 128 MiB (libtorrent accepts up to 512 MiB; a piece over 16 MiB is never held in
//! memory): a two-file torrent whose first piece spans both files downloads from aria2
//! byte-exact while rivulet's anonymous memory stays under the length of one piece (its blocks
//! go to storage as they come and the piece is hashed from there), and `rivulet seed` of that
//! copy, checked from disk at start a chunk at a time, serves it to an aria2 leecher.

use std::time::{Duration, Instant};

use rivulet_tests::aria2::{Aria2Leecher, SeederOptions};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr, own_loopback};
use rivulet_tests::rivulet::{self, Download};
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(180);
const PIECE: u64 = 128 << 20;

/// Resident anonymous memory of process `pid` in bytes (0 once it is gone).
fn rss_anon(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn pieces_of_128_mib_download_and_seed_without_being_held_in_memory() {
    let fixture = Fixture::big_pieces();
    assert_eq!(fixture.meta.piece_count(), 2);
    let work = WorkDir::new("big-pieces");
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);
    let out = work.subdir("out");
    let mut dl = Download::new(&torrent, &out)
        .listen(free_addr(LOCALHOST))
        .events(&work.join("download.jsonl"))
        .spawn(work.path(), "download");
    // Sampled while it runs: a measurement, not a wait (the exit is what is waited for).
    let pid = dl.proc.pid();
    let started = Instant::now();
    let mut peak = 0;
    while dl.proc.is_running() && started.elapsed() < BOUND {
        peak = peak.max(rss_anon(pid));
        std::thread::sleep(Duration::from_millis(5));
    }
    dl.wait_success(BOUND);
    eprintln!("peak anonymous memory of the download: {} KiB", peak / 1024);
    assert_same_files(fixture, &out, "rivulet download");
    assert!(
        peak < PIECE / 2,
        "anonymous memory reached {peak} bytes: a 128 MiB piece was held"
    );
    let verified = dl.events().verified();
    assert!(
        verified.contains(&0) && verified.contains(&1),
        "{verified:?}"
    );

    // A fresh seed hashes both pieces from disk before it serves them.
    let listen = free_addr(LOCALHOST);
    let state = work.subdir("seed-state");
    let extra = ["--state-dir", state.to_str().expect("utf-8")];
    let events = work.join("seed.jsonl");
    let mut seed = rivulet::seed_with(work.path(), &torrent, &out, listen, &events, &extra);
    seed.wait_listening();
    let seed_events = seed.events();
    let rechecked: Vec<_> = seed_events.of("rechecked").collect();
    assert_eq!(rechecked.len(), 1);
    assert_eq!(rechecked[0]["verified"], 2, "both pieces hashed from disk");
    swarm
        .tracker
        .wait_lists(&fixture.meta.info_hash, listen, Duration::from_secs(30));
    drop(swarm.seeder);
    let got = work.subdir("leecher");
    let mut leecher = Aria2Leecher::start(work.path(), &torrent, &got, own_loopback());
    leecher.wait_done(BOUND);
    assert_same_files(fixture, &got, "aria2 leecher of rivulet seed");
    seed.terminate(Duration::from_secs(15));
}
