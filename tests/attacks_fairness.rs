//! Issue 14, "Fairness": attackers that once took the process or its peer slots from honest
//! peers, replayed against the real binary.
//!
//! - Flooding connections (keep-alive, have, bitfield) once froze a two-core process: a
//!   download from aria2 made no progress for 30 s. They are dropped ("... flood") and the
//!   download finishes within a stated time of the same download unattacked.
//! - Peers that never show interest and ask once every 20 s while choked held every slot for
//!   good. With `--max-peers 10` full of them, an honest aria2 leecher gets in and completes.
//! - A cycle of 80 half-open connections from one address answered 0 of 10 handshake probes.
//!   Probes from other addresses are now answered.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rivulet_tests::aria2::{Aria2Leecher, SeederOptions};
use rivulet_tests::attacker::{Attack, Behaviour, Source};
use rivulet_tests::events::Events;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr, own_loopback};
use rivulet_tests::process::poll;
use rivulet_tests::raw_peer::RawPeer;
use rivulet_tests::rivulet::{self, Download};
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::wire;
use rivulet_tests::workdir::WorkDir;

/// How much longer the attacked download may take than the unattacked one.
const FLOOD_SLOWDOWN: Duration = Duration::from_secs(10);

/// Downloads the swarm's fixture into a fresh directory; returns how long it took and its
/// events (`attack` starts once rivulet listens and runs until the download ends).
fn timed_download(
    work: &WorkDir,
    swarm: &Swarm,
    tag: &str,
    attack: impl FnOnce(SocketAddr) -> Vec<Attack>,
) -> (Duration, Events, Vec<Attack>) {
    let torrent = swarm.torrent(work, Announce::Http);
    let out = work.subdir(tag);
    let listen = free_addr(LOCALHOST);
    let mut run = Download::new(&torrent, &out)
        .listen(listen)
        .events(&work.join(&format!("{tag}.jsonl")))
        .spawn(work.path(), tag);
    run.wait_events(Duration::from_secs(30), "rivulet to listen", |e| {
        e.has("listening")
    });
    let started = Instant::now();
    let attacks = attack(listen);
    run.wait_success(Duration::from_secs(120));
    let took = started.elapsed();
    assert_same_files(swarm.fixture, &out, tag);
    (took, run.events(), attacks)
}

#[test]
fn floods_are_dropped_and_the_download_ends_near_its_unattacked_time() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("attack-floods");
    // 2 MiB/s: about 9 s of download for the floods to run against (in 4 s on a busy machine,
    // a debug build read too few keep-alives to pass its budget).
    let swarm = Swarm::start(&work, fixture, SeederOptions::limited(2 << 20));
    let (calm, _, _) = timed_download(&work, &swarm, "unattacked", |_| Vec::new());
    let meta = &fixture.meta;
    let pieces = meta.piece_count();
    let floods = [
        ("keep-alive", vec![0u8; 4]),
        ("have", wire::have(pieces / 2)),
        (
            "bitfield",
            wire::message(wire::BITFIELD, &wire::full_bitfield(pieces)),
        ),
    ];
    let (attacked, events, attacks) = timed_download(&work, &swarm, "attacked", |listen| {
        floods
            .iter()
            .map(|(_, bytes)| {
                // Two connections of each kind, dialing again 100 ms after each drop.
                Attack::start(
                    listen,
                    meta.info_hash,
                    pieces,
                    2,
                    Source::OwnAddresses,
                    Behaviour::Flood(bytes.clone()),
                    Some(Duration::from_millis(100)),
                )
            })
            .collect()
    });
    for ((kind, _), attack) in floods.iter().zip(attacks) {
        let ips = attack.addrs.clone();
        let tally = attack.stop();
        let reasons = events.drop_reasons(&ips);
        let flood = format!("{kind} flood");
        let named = reasons.iter().filter(|r| **r == flood).count();
        eprintln!(
            "{kind} flooders: {tally:?}; {named} of {} drops for \"{flood}\"",
            reasons.len()
        );
        assert!(
            named >= 2,
            "the {kind} flooders were not dropped for \"{flood}\": {reasons:?}"
        );
    }
    eprintln!("download unattacked {calm:?}, under floods {attacked:?}");
    assert!(
        attacked <= calm + FLOOD_SLOWDOWN,
        "under floods the download took {attacked:?}, unattacked {calm:?} \
         (bound: {FLOOD_SLOWDOWN:?} more)"
    );
}

const MAX_PEERS: usize = 10;
const SLOT_HOLDERS: usize = 50;
/// A peer that never moved data may be evicted once connected this long (EVICT_GRACE in
/// core/src/torrent/swarm.rs), plus slack.
const EVICT_GRACE: Duration = Duration::from_millis(10_500);

#[test]
fn slots_held_by_never_interested_peers_are_given_to_an_honest_leecher() {
    let fixture = Fixture::single_small();
    let work = WorkDir::new("attack-slot-holders");
    let max_peers = MAX_PEERS.to_string();
    let (tracker, mut seed, addr) =
        rivulet::listed_seed(&work, fixture, &["--max-peers", &max_peers]);
    let holders = Attack::start(
        addr,
        fixture.meta.info_hash,
        fixture.meta.piece_count(),
        SLOT_HOLDERS,
        Source::OwnAddresses,
        Behaviour::SlotHolder {
            every: Duration::from_secs(20),
        },
        None,
    );
    let full = poll(Duration::from_secs(30), || {
        let t = holders.tally();
        if t.connections == SLOT_HOLDERS as u64 && t.holding + t.closed_by_client == t.connections {
            Ok(t)
        } else {
            Err(format!("{t:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("the slot holders did not settle: {e}"));
    let filled = Instant::now();
    assert_eq!(
        full.holding, MAX_PEERS as u64,
        "the holders did not fill the {MAX_PEERS} slots: {full:?}"
    );
    // Eviction needs them connected for the grace period: a time, not an event.
    std::thread::sleep(EVICT_GRACE.saturating_sub(filled.elapsed()));
    let leech_torrent = fixture.torrent(&tracker.http_url(), "leech", work.path());
    let out = work.subdir("out");
    let started = Instant::now();
    let mut leecher = Aria2Leecher::start(work.path(), &leech_torrent, &out, own_loopback());
    leecher.wait_done(Duration::from_secs(60));
    let took = started.elapsed();
    assert_same_files(
        fixture,
        &out,
        "aria2 leecher of a seed full of slot holders",
    );
    let tally = holders.stop();
    let evicted = seed
        .events()
        .of("peer_dropped")
        .filter(|l| l["reason"] == "idle while a newcomer needed its slot")
        .count();
    eprintln!(
        "{SLOT_HOLDERS} slot holders: {full:?} at first, {tally:?} at the end; aria2 done in \
         {took:?}; {evicted} evicted"
    );
    assert!(evicted >= 1, "no slot holder was evicted");
    seed.proc.assert_running("after the slot holders");
}

const HALF_OPEN: usize = 80;
const PROBES: usize = 10;
/// A probe's handshake must be answered this fast.
const PROBE_ANSWER: Duration = Duration::from_secs(3);

#[test]
fn eighty_half_open_connections_from_one_address_leave_handshakes_from_others_answered() {
    let fixture = Fixture::single_small();
    let work = WorkDir::new("attack-half-open");
    let (_tracker, mut seed, addr) = rivulet::listed_seed(&work, fixture, &[]);
    let cycler = Ipv4Addr::new(127, 0, 3, 33);
    let half_open = Attack::start(
        addr,
        fixture.meta.info_hash,
        fixture.meta.piece_count(),
        HALF_OPEN,
        Source::Shared(cycler),
        Behaviour::HalfOpen,
        Some(Duration::ZERO),
    );
    poll(Duration::from_secs(30), || {
        let t = half_open.tally();
        if t.connections >= 2 * HALF_OPEN as u64 {
            Ok(())
        } else {
            Err(format!("{t:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("the half-open cycle did not start: {e}"));
    let mut slowest = Duration::ZERO;
    let mut answered = 0;
    for _ in 0..PROBES {
        let from = IpAddr::V4(own_loopback());
        let began = Instant::now();
        let ok = RawPeer::connect_from(from, addr, None)
            .and_then(|mut p| p.handshake(&fixture.meta.info_hash, PROBE_ANSWER))
            .is_ok();
        if ok {
            answered += 1;
            slowest = slowest.max(began.elapsed());
        }
    }
    let tally = half_open.stop();
    eprintln!(
        "{HALF_OPEN} half-open from {cycler}: {tally:?}; {answered}/{PROBES} probes answered, \
         slowest {slowest:?}"
    );
    assert_eq!(answered, PROBES, "probes answered under a half-open cycle");
    seed.proc.assert_running("after the half-open cycle");
}
