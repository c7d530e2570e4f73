//! Issue 14, "Bounds": attacks that once grew rivulet's memory without limit, replayed against
//! the real binary with the bound each must now stay within.
//!
//! - A peer that cycles choke/unchoke and never reads (10.9 GB RssAnon in 60 s before the
//!   outgoing queue was bounded) is dropped; memory stays bounded; the download from an honest
//!   aria2 seeder completes exact.
//! - Forty peers withholding the last block of every piece (2.6 GB held before partial pieces
//!   were capped, 1.3 GB still held after they left) hold at most the cap, and nothing once
//!   they are gone.
//! - Unrequested blocks into a seed (670k accepted in 5 s and counted as downloaded) drop the
//!   sender after a few dozen and count for nothing.

use std::time::{Duration, Instant};

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::attacker::{Attack, Behaviour, Source};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::make_torrent;
use rivulet_tests::mount::MountCmd;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::proc_stats::Sampler;
use rivulet_tests::process::poll;
use rivulet_tests::rivulet::Download;
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

const MIB: u64 = 1 << 20;
const BOUND: Duration = Duration::from_secs(120);
const DEAD_TRACKER: &str = "http://127.0.0.1:1/announce";

/// Resident heap a download of the 18 MiB multi fixture may reach under a choke cycler: the
/// outbox of a peer that does not read holds at most 4,096 messages.
const CHOKE_CYCLE_ANON_MIB: u64 = 128;

#[test]
fn a_choke_cycler_that_never_reads_is_dropped_and_memory_stays_bounded() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("attack-choke-cycle");
    // 1 MiB/s: the download, and so the attack, lasts about 18 s.
    let swarm = Swarm::start(&work, fixture, SeederOptions::limited(MIB));
    let torrent = swarm.torrent(&work, Announce::Http);
    let out = work.subdir("out");
    let listen = free_addr(LOCALHOST);
    let mut run = Download::new(&torrent, &out)
        .listen(listen)
        .events(&work.join("events.jsonl"))
        .spawn(work.path(), "download");
    let sampler = Sampler::start(run.proc.pid());
    run.wait_events(Duration::from_secs(30), "rivulet to listen", |e| {
        e.has("listening")
    });
    let attack = Attack::start(
        listen,
        fixture.meta.info_hash,
        fixture.meta.piece_count(),
        1,
        Source::OwnAddresses,
        Behaviour::ChokeCycle,
        Some(Duration::from_millis(200)),
    );
    let cycler = attack.addrs[0];
    let started = Instant::now();
    run.wait_success(BOUND);
    let lasted = started.elapsed();
    let tally = attack.stop();
    assert_same_files(fixture, &out, "download beside a choke cycler");
    let reasons = run.events().drop_reasons(&[cycler]);
    eprintln!(
        "choke cycler for {lasted:?}: {tally:?}; drops: {reasons:?}; peak RssAnon {} MiB, \
         VmRSS {} MiB",
        sampler.peak_anon_mib(),
        sampler.peak_rss_mib()
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("not reading what we send")),
        "the cycler was never dropped for not reading: {reasons:?}"
    );
    assert!(
        tally.handshakes >= 2,
        "the attack did not last: only {} connections were answered",
        tally.handshakes
    );
    assert!(
        sampler.peak_anon_mib() <= CHOKE_CYCLE_ANON_MIB,
        "rivulet reached {} MiB of heap under a choke cycler (bound {CHOKE_CYCLE_ANON_MIB})",
        sampler.peak_anon_mib()
    );
}

/// Pieces of the zero torrent: 512 MiB of 256 KiB pieces, four times the partial-piece cap.
const ZEROS_LEN: u64 = 512 * MIB;
const ZEROS_PIECE: u64 = 256 << 10;
/// The engine's cap on bytes of unfinished pieces (core/src/torrent/pieces.rs), plus the one
/// piece a peer may start while just under it.
const PARTIAL_CAP: u64 = 128 * MIB + ZEROS_PIECE;
/// Heap bound while the withholders are connected: the cap plus the engine's own needs.
const WITHHOLD_ANON_MIB: u64 = 200;
const WITHHOLDERS: usize = 40;
/// How long the withholders stay: past the 30 s request timeout would only repeat the same
/// state (the withheld block is asked again of the same peer).
const WITHHOLD_FOR: Duration = Duration::from_secs(15);

#[test]
fn forty_peers_withholding_last_blocks_hold_at_most_the_cap_and_nothing_once_gone() {
    let work = WorkDir::new("attack-withhold");
    let torrent = work.join("zeros.torrent");
    let bytes = make_torrent::zeros("zeros.bin", ZEROS_LEN, ZEROS_PIECE, DEAD_TRACKER);
    std::fs::write(&torrent, bytes).expect("write torrent");
    let meta = rivulet_tests::torrent::TorrentInfo::read(&torrent);
    let listen = free_addr(LOCALHOST);
    let mnt = work.subdir("mnt");
    let mut m = MountCmd::new(&torrent, &mnt)
        .data(&work.subdir("data"))
        .listen(listen)
        .events(&work.join("events.jsonl"))
        .spawn(work.path(), "mount");
    m.wait_events(Duration::from_secs(30), "the mount to listen", |e| {
        e.has("listening")
    });
    let sampler = Sampler::start(m.proc.pid());
    let attack = Attack::start(
        listen,
        meta.info_hash,
        meta.piece_count(),
        WITHHOLDERS,
        Source::OwnAddresses,
        Behaviour::WithholdLastBlock {
            piece_length: ZEROS_PIECE,
            total_length: ZEROS_LEN,
        },
        None,
    );
    // The attack is a duration: sample the status file through it.
    let until = Instant::now() + WITHHOLD_FOR;
    let mut peak_partial = 0;
    let mut peak_peers = 0;
    while Instant::now() < until {
        let st = m.status();
        peak_partial = peak_partial.max(st["partial_bytes"].as_u64().unwrap_or(0));
        peak_peers = peak_peers.max(st["peers"].as_u64().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(200));
    }
    let connected_anon = sampler.peak_anon_mib();
    let tally = attack.stop();
    let left = Instant::now();
    let released = poll(Duration::from_secs(10), || {
        let st = m.status();
        match (st["partial_bytes"].as_u64(), st["peers"].as_u64()) {
            (Some(0), Some(0)) => Ok(()),
            (p, n) => Err(format!("partial_bytes {p:?}, peers {n:?}")),
        }
    });
    eprintln!(
        "{WITHHOLDERS} withholders for {WITHHOLD_FOR:?}: {tally:?}; peak {peak_peers} peers, \
         peak partial {:.1} MiB, peak RssAnon {connected_anon} MiB; released in {:?}",
        peak_partial as f64 / MIB as f64,
        left.elapsed()
    );
    assert!(
        tally.handshakes as usize >= WITHHOLDERS && peak_peers as usize >= WITHHOLDERS,
        "not every withholder got in: {tally:?}, peak {peak_peers} peers"
    );
    assert!(
        peak_partial >= WITHHOLDERS as u64 * ZEROS_PIECE,
        "the attack did not bite: partial pieces peaked at {peak_partial} bytes"
    );
    assert!(
        peak_partial <= PARTIAL_CAP,
        "partial pieces reached {peak_partial} bytes (cap {PARTIAL_CAP})"
    );
    assert!(
        connected_anon <= WITHHOLD_ANON_MIB,
        "rivulet reached {connected_anon} MiB of heap (bound {WITHHOLD_ANON_MIB})"
    );
    if let Err(e) = released {
        panic!("partial pieces still held after the withholders left: {e}");
    }
    m.terminate(Duration::from_secs(15));
}

#[test]
fn unrequested_blocks_into_a_seed_drop_the_sender_and_count_for_nothing() {
    let fixture = Fixture::single_small();
    let work = WorkDir::new("attack-unrequested-seed");
    let data = work.subdir("data");
    fixture.copy_payload(&data);
    let torrent = fixture.torrent(DEAD_TRACKER, "dead", work.path());
    let listen = free_addr(LOCALHOST);
    let mnt = work.subdir("mnt");
    let mut m = MountCmd::new(&torrent, &mnt)
        .data(&data)
        .listen(listen)
        .events(&work.join("events.jsonl"))
        .spawn(work.path(), "mount");
    m.wait_events(Duration::from_secs(30), "a complete seed listening", |e| {
        e.has("listening") && e.has("complete")
    });
    let attack = Attack::start(
        listen,
        fixture.meta.info_hash,
        fixture.meta.piece_count(),
        1,
        Source::OwnAddresses,
        Behaviour::UnrequestedBlocks,
        Some(Duration::from_millis(100)),
    );
    let sender = attack.addrs[0];
    let started = Instant::now();
    let dropped = poll(Duration::from_secs(30), || {
        let t = attack.tally();
        if t.closed_by_client >= 5 {
            Ok(())
        } else {
            Err(format!("{t:?}"))
        }
    });
    let lasted = started.elapsed();
    let tally = attack.stop();
    if let Err(e) = dropped {
        panic!("the sender of unrequested blocks is not dropped: {e}");
    }
    let st = m.status();
    let reasons = m.events().drop_reasons(&[sender]);
    eprintln!(
        "unrequested blocks for {lasted:?}: {tally:?}; status downloaded {} uploaded {}; \
         drops {reasons:?}",
        st["downloaded"], st["uploaded"]
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("too many unrequested or malformed blocks")),
        "dropped, but not for unrequested blocks: {reasons:?}"
    );
    assert!(
        tally.longest_ms <= 2000,
        "a connection sending unrequested blocks lasted {} ms",
        tally.longest_ms
    );
    assert_eq!(st["downloaded"], 0, "unrequested blocks were counted: {st}");
    assert_eq!(st["uploaded"], 0, "{st}");
    m.terminate(Duration::from_secs(15));
}
