//! Magnet links through the core `Session` API, the contract the mount and the HTTP API build
//! on: `add` resolves to the usual torrent once the metadata is verified; while it is fetched
//! the session lists the link as pending, and removing it cancels the fetch (the `add` fails
//! as cancelled, events say so). The seeder is a real aria2 found through opentracker.

use std::path::Path;
use std::time::Duration;

use rivulet_core::metainfo::Magnet;
use rivulet_core::rt;
use rivulet_core::session::{AddTorrent, Mode, SessionError, TorrentSource};
use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::process::{poll, wait_for};
use rivulet_tests::session::{TestSession, wait_complete};
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(120);

fn add_magnet(link: &str, data_dir: &Path) -> AddTorrent {
    AddTorrent {
        source: TorrentSource::Magnet(Magnet::parse(link).expect("valid magnet link")),
        data_dir: data_dir.to_path_buf(),
        mode: Mode::Download { seed: false },
        read_timeout: None,
        peers: Vec::new(),
    }
}

#[test]
fn a_magnet_added_to_a_session_resolves_to_its_torrent_and_downloads() {
    let work = WorkDir::new("magnet-session-add");
    let fixture = Fixture::single_small();
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let s = TestSession::start(&work, "s");
    let link = format!(
        "magnet:?xt=urn:btih:{}&tr={}",
        fixture.info_hash_hex(),
        swarm.tracker.url(Announce::Http)
    );
    let out = work.subdir("out");
    let handle = rt::block_on(rt::timeout(BOUND, s.session.add(add_magnet(&link, &out))))
        .expect("metadata within the bound")
        .unwrap_or_else(|e| panic!("adding the magnet link: {e}"));
    assert_eq!(handle.meta().info_hash.0, fixture.meta.info_hash);
    assert!(s.session.pending().is_empty(), "still listed as pending");
    assert!(s.session.get(&handle.meta().info_hash).is_some());
    wait_complete(&handle, BOUND);
    assert_same_files(fixture, &out, "a session's magnet download");
    s.shutdown(Duration::from_secs(30));
}

#[test]
fn a_pending_magnet_is_listed_and_removing_it_cancels_the_fetch() {
    let work = WorkDir::new("magnet-session-pending");
    let s = TestSession::start(&work, "s");
    // Nobody listens on the one peer it names: the fetch waits for good.
    let nobody = free_addr(LOCALHOST);
    let link = format!(
        "magnet:?xt=urn:btih:{}&dn=waiting&x.pe={nobody}",
        "ab".repeat(20)
    );
    let magnet = Magnet::parse(&link).unwrap();
    let session = s.session.clone();
    let add = add_magnet(&link, &work.subdir("out"));
    let adding = std::thread::spawn(move || rt::block_on(session.add(add)));
    wait_for(Duration::from_secs(10), "the magnet to be pending", || {
        !s.session.pending().is_empty()
    });
    let pending = s.session.pending();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].info_hash, magnet.info_hash);
    assert_eq!(pending[0].name.as_deref(), Some("waiting"));
    rt::block_on(s.session.remove(&magnet.info_hash, false)).expect("remove a pending magnet");
    let result = adding.join().expect("add thread");
    assert!(
        matches!(result, Err(SessionError::Cancelled(_))),
        "add ended with {:?}",
        result.map(|h| h.meta().name.clone())
    );
    assert!(s.session.pending().is_empty());
    // The cancelled fetch reports `metadata_failed` from its own task, after remove returned.
    let kinds = ["metadata_fetching", "metadata_failed", "removed"];
    let seen = poll(Duration::from_secs(10), || {
        let events = s.events();
        match kinds.iter().find(|k| !events.has(k)) {
            None => Ok(()),
            Some(k) => Err(format!("no `{k}` event:\n{}", events.tail(10))),
        }
    });
    if let Err(e) = seen {
        panic!("{e}");
    }
    s.shutdown(Duration::from_secs(30));
}
