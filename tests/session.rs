//! One session, many torrents, in-process through the core `Session` API: torrents share the
//! session's one listener and finish byte-identical next to each other; pausing or removing one
//! leaves the others running; nothing a torrent or the session spawned outlives remove and
//! shutdown; two sessions in one process pass a torrent along over loopback; and a handshake for
//! a torrent the session does not have is closed without disturbing the others.
//!
//! The peers are real: aria2 seeders found through opentracker, or another session.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rivulet_core::metainfo::InfoHash;
use rivulet_core::rt;
use rivulet_core::session::Mode;
use rivulet_core::torrent::{Phase, TorrentHandle};
use rivulet_tests::aria2::{Aria2Seeder, SeederOptions};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::LOCALHOST;
use rivulet_tests::process::wait_for;
use rivulet_tests::raw_peer::{Closed, RawPeer};
use rivulet_tests::session::{TestSession, metainfo, metainfo_without_trackers, wait_complete};
use rivulet_tests::tracker::Tracker;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::wire;
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(180);
const SHUTDOWN: Duration = Duration::from_secs(30);
/// Bytes per second each slow seeder sends: the 1 MB fixture takes about 4 s, the 3 MiB one
/// about 12 s, long enough to pause and remove torrents while they download (a first 64 KiB
/// piece comes within a second).
const SLOW: u64 = 256 * 1024;

/// One tracker and an aria2 seeder of each fixture, listed by the tracker.
struct Seeded {
    tracker: Tracker,
    _seeders: Vec<Aria2Seeder>,
}

fn seed_with_aria2(work: &WorkDir, fixtures: &[&'static Fixture], upload_limit: u64) -> Seeded {
    let hashes: Vec<[u8; 20]> = fixtures.iter().map(|f| f.meta.info_hash).collect();
    let tracker = Tracker::start(&work.subdir("tracker"), &hashes);
    let seeders = fixtures
        .iter()
        .map(|f| {
            let torrent = f.torrent(&tracker.http_url(), "seed", work.path());
            let opts = SeederOptions {
                upload_limit,
                ..SeederOptions::default()
            };
            Aria2Seeder::start(work.path(), f, &torrent, &tracker, opts)
        })
        .collect();
    Seeded {
        tracker,
        _seeders: seeders,
    }
}

/// A torrent of the session, where it downloads to and what it must end up as.
struct Added {
    fixture: &'static Fixture,
    out: PathBuf,
    handle: TorrentHandle,
}

impl Added {
    fn download(
        s: &TestSession,
        work: &WorkDir,
        fixture: &'static Fixture,
        tracker: &Tracker,
    ) -> Added {
        let out = work.subdir(&format!("out-{}", fixture.id));
        let meta = metainfo(fixture, &tracker.http_url(), work);
        let handle = s.add(&meta, &out, Mode::Download { seed: false }, &[]);
        Added {
            fixture,
            out,
            handle,
        }
    }

    fn hash(&self) -> InfoHash {
        InfoHash(self.fixture.meta.info_hash)
    }

    fn pieces(&self) -> u32 {
        self.handle.stats().pieces_have
    }

    /// Waits until it holds some pieces but not all: a download under way.
    fn wait_under_way(&self) {
        wait_for(
            BOUND,
            &format!("{} to verify a piece", self.fixture.id),
            || self.pieces() > 0,
        );
        assert!(
            !self.handle.stats().complete,
            "{} finished before the test could act mid-download: slow its seeder down",
            self.fixture.id
        );
    }

    fn assert_complete_and_identical(&self, who: &str) {
        wait_complete(&self.handle, BOUND);
        assert_same_files(self.fixture, &self.out, who);
    }
}

#[test]
fn three_torrents_share_one_listen_port_and_all_finish_byte_identical() {
    let work = WorkDir::new("session-three");
    let fixtures = [
        Fixture::single_small(),
        Fixture::multi_small(),
        Fixture::media(),
    ];
    let swarm = seed_with_aria2(&work, &fixtures, 0);
    let s = TestSession::start(&work, "session");
    let listen = s.listen_addr();
    let added: Vec<Added> = fixtures
        .iter()
        .map(|f| Added::download(&s, &work, f, &swarm.tracker))
        .collect();

    // Every torrent announces the session's one port; the tracker sees it from 127.0.0.1.
    let announced = SocketAddr::from((LOCALHOST, listen.port()));
    for a in &added {
        assert_eq!(a.handle.listen_addr(), listen, "{}", a.fixture.id);
        swarm.tracker.wait_lists(
            &a.fixture.meta.info_hash,
            announced,
            Duration::from_secs(30),
        );
    }
    for a in &added {
        a.assert_complete_and_identical(&format!("session download of {}", a.fixture.id));
    }
    s.shutdown(SHUTDOWN);

    let events = s.events();
    // Each torrent says it listens once it is live: all on the session's one address.
    let listening: Vec<_> = events.of("listening").collect();
    assert_eq!(listening.len(), added.len(), "one `listening` per torrent");
    for l in &listening {
        assert_eq!(
            l["addr"],
            listen.to_string().as_str(),
            "one listener for the whole session"
        );
    }
    for a in &added {
        let hex = a.fixture.info_hash_hex();
        for kind in ["added", "started", "complete"] {
            assert!(
                events.of(kind).any(|e| e["torrent"] == hex.as_str()),
                "no `{kind}` event for {}:\n{}",
                a.fixture.id,
                events.tail(20)
            );
        }
    }
}

#[test]
fn pause_one_remove_one_and_the_others_carry_on() {
    let work = WorkDir::new("session-pause-remove");
    let (to_pause, to_remove, to_carry) = (
        Fixture::single_small(),
        Fixture::media(),
        Fixture::multi_small(),
    );
    let swarm = seed_with_aria2(&work, &[to_pause, to_remove, to_carry], SLOW);
    let s = TestSession::start(&work, "session");
    let paused = Added::download(&s, &work, to_pause, &swarm.tracker);
    let removed = Added::download(&s, &work, to_remove, &swarm.tracker);
    let carried = Added::download(&s, &work, to_carry, &swarm.tracker);

    paused.wait_under_way();
    rt::block_on(s.session.pause(&paused.hash())).expect("pause");
    let held = paused.handle.stats();
    assert_eq!(held.phase, Phase::Paused);
    assert_eq!(
        held.peers, 0,
        "pause closes every connection of the torrent"
    );
    assert!(
        held.pieces_have < held.pieces_total,
        "paused after it finished"
    );

    removed.wait_under_way();
    rt::block_on(s.session.remove(&removed.hash(), false)).expect("remove keeping data");
    let had = removed.pieces();
    let data = removed.out.join(to_remove.name());
    assert!(s.session.get(&removed.hash()).is_none());
    assert_eq!(s.session.torrents().len(), 2);
    assert_eq!(
        removed.handle.live_tasks(),
        0,
        "the removed torrent still runs tasks"
    );
    assert!(
        data.exists(),
        "remove without delete_data deleted {}",
        data.display()
    );

    // While the third downloads to the end, the paused one stays exactly where it was.
    wait_for(BOUND, "the third torrent to complete", || {
        let now = paused.handle.stats();
        assert_eq!(
            (now.phase, now.pieces_have, now.peers),
            (Phase::Paused, held.pieces_have, 0),
            "the paused torrent moved"
        );
        carried.handle.stats().complete
    });
    carried.assert_complete_and_identical("the torrent next to a paused and a removed one");

    // Added again, it picks up what it kept; removed with its data, the data is gone.
    let meta = metainfo(to_remove, &swarm.tracker.http_url(), &work);
    let again = s.add(&meta, &removed.out, Mode::Download { seed: false }, &[]);
    assert!(
        again.stats().pieces_have >= had,
        "re-added with {} pieces, kept {had}",
        again.stats().pieces_have
    );
    rt::block_on(s.session.remove(&removed.hash(), true)).expect("remove deleting data");
    assert_eq!(again.live_tasks(), 0);
    assert!(
        !data.exists(),
        "remove with delete_data left {}",
        data.display()
    );

    s.session.resume(&paused.hash()).expect("resume");
    paused.assert_complete_and_identical("the torrent paused and resumed");
    s.shutdown(SHUTDOWN);

    let events = s.events();
    let of = |kind: &str, a: &Added| {
        let hex = a.fixture.info_hash_hex();
        events
            .of(kind)
            .filter(|e| e["torrent"] == hex.as_str())
            .count()
    };
    assert_eq!(of("paused", &paused), 1);
    assert_eq!(of("removed", &removed), 2, "removed twice");
    assert_eq!(of("removed", &carried) + of("paused", &carried), 0);
}

#[test]
fn every_task_a_torrent_spawned_has_ended_after_remove_and_shutdown() {
    let work = WorkDir::new("session-tasks");
    let fixtures = [Fixture::single_small(), Fixture::media()];
    let swarm = seed_with_aria2(&work, &fixtures, SLOW);
    let s = TestSession::start(&work, "session");
    let removed = Added::download(&s, &work, fixtures[0], &swarm.tracker);
    let kept = Added::download(&s, &work, fixtures[1], &swarm.tracker);
    removed.wait_under_way();
    kept.wait_under_way();

    // Two incoming connections: one stuck in its handshake (a task of the session), one
    // attached to the torrent that stays (a task of that torrent).
    let mut silent = RawPeer::connect(s.listen_addr()).expect("connect");
    silent
        .send(&wire::handshake(&kept.fixture.meta.info_hash)[..20])
        .expect("send half a handshake");
    let mut attached = RawPeer::connect(s.listen_addr()).expect("connect");
    let named = attached
        .handshake(&kept.fixture.meta.info_hash, Duration::from_secs(10))
        .expect("the session answers a handshake for a torrent it has");
    assert_eq!(named, kept.fixture.meta.info_hash);
    wait_for(
        Duration::from_secs(10),
        "the session to read the silent handshake",
        || s.session.live_tasks() >= 2,
    );

    rt::block_on(s.session.remove(&removed.hash(), false)).expect("remove");
    assert_eq!(
        removed.handle.live_tasks(),
        0,
        "tasks of the removed torrent"
    );
    assert_eq!(removed.handle.phase(), Phase::Stopped);
    assert!(
        kept.handle.live_tasks() > 0,
        "the other torrent was stopped too"
    );

    s.shutdown(SHUTDOWN);
    for a in [&removed, &kept] {
        assert_eq!(
            a.handle.live_tasks(),
            0,
            "tasks of {} after shutdown",
            a.fixture.id
        );
    }
    assert_eq!(
        s.session.live_tasks(),
        0,
        "tasks of the session after shutdown"
    );
    assert_eq!(s.session.connections(), 0, "connections after shutdown");
    assert!(s.session.torrents().is_empty());
    for (name, peer) in [("silent", &mut silent), ("attached", &mut attached)] {
        assert_eq!(
            peer.wait_closed(Duration::from_secs(5)),
            Closed::ByRemote,
            "the {name} connection outlived the session"
        );
    }
}

#[test]
fn two_sessions_in_one_process_transfer_over_loopback() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("session-two");
    let meta = metainfo_without_trackers(fixture, &work);
    let data = work.subdir("a-data");
    fixture.copy_payload(&data);
    let a = TestSession::start(&work, "a");
    let a_seed = a.add(
        &meta,
        &data,
        Mode::Seed {
            download_missing: false,
        },
        &[],
    );
    assert!(a_seed.stats().complete, "A did not find its copy complete");

    let b = TestSession::start(&work, "b");
    let b_out = work.subdir("b-out");
    let b_torrent = b.add(
        &meta,
        &b_out,
        Mode::Download { seed: true },
        &[a.listen_addr()],
    );
    wait_complete(&b_torrent, BOUND);
    assert_same_files(fixture, &b_out, "session B downloading from session A");
    assert!(a_seed.stats().uploaded >= fixture.total_length());

    // A leaves; C can only get the torrent from what B downloaded.
    a.shutdown(SHUTDOWN);
    let c = TestSession::start(&work, "c");
    let c_out = work.subdir("c-out");
    let c_torrent = c.add(
        &meta,
        &c_out,
        Mode::Download { seed: false },
        &[b.listen_addr()],
    );
    wait_complete(&c_torrent, BOUND);
    assert_same_files(fixture, &c_out, "session C downloading from session B");
    assert!(b_torrent.stats().uploaded >= fixture.total_length());
    let b_addr = b.listen_addr().to_string();
    let c_events = c.events();
    assert!(
        c_events
            .addrs("peer_connected")
            .iter()
            .all(|p| *p == b_addr),
        "C connected to someone besides B: {:?}",
        c_events.addrs("peer_connected")
    );
    c.shutdown(SHUTDOWN);
    b.shutdown(SHUTDOWN);
}

#[test]
fn a_handshake_for_a_torrent_the_session_lacks_is_closed_and_the_others_go_on() {
    let fixture = Fixture::multi_small();
    let work = WorkDir::new("session-unknown-hash");
    let meta = metainfo_without_trackers(fixture, &work);
    let data = work.subdir("data");
    fixture.copy_payload(&data);
    let s = TestSession::start(&work, "session");
    let seed = s.add(
        &meta,
        &data,
        Mode::Seed {
            download_missing: false,
        },
        &[],
    );
    let hash = fixture.meta.info_hash;
    let patience = Duration::from_secs(10);

    let mut honest = RawPeer::connect(s.listen_addr()).expect("connect");
    assert_eq!(honest.handshake(&hash, patience).expect("handshake"), hash);
    honest
        .wait_message(wire::BITFIELD, patience)
        .expect("bitfield");
    wait_for(patience, "the honest peer to be attached", || {
        seed.stats().peers == 1
    });

    // Closed as soon as its handshake is read, well before the handshake timeout, unanswered.
    let started = Instant::now();
    let mut stranger = RawPeer::connect(s.listen_addr()).expect("connect");
    let answer = stranger.handshake(&rand::random(), patience);
    assert!(
        answer.is_err(),
        "the session answered a handshake for a torrent it does not have"
    );
    assert_eq!(stranger.wait_closed(patience), Closed::ByRemote);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed only after {:?}",
        started.elapsed()
    );

    // The honest peer is still served.
    honest
        .send(&wire::message(wire::INTERESTED, &[]))
        .expect("send interested");
    honest
        .wait_message(wire::UNCHOKE, patience)
        .expect("unchoke");
    let block = 16 * 1024;
    honest
        .send(&wire::request(0, 0, block))
        .expect("send request");
    let piece = honest.wait_message(wire::PIECE, patience).expect("piece");
    assert_eq!(
        &piece[..8],
        &[0u8; 8],
        "the block answered is not piece 0 at 0"
    );
    assert_eq!(&piece[8..], &fixture.piece(0)[..block as usize]);
    assert_eq!(seed.stats().peers, 1);
    assert_eq!(s.session.connections(), 1);
    s.shutdown(SHUTDOWN);
}
