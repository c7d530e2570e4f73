//! Real FUSE mounts of several torrents that come and go while mounted. The sources stand in
//! for the engine (bytes from memory, reads that never finish): the swarm-backed version of
//! these scenarios is tests/mount_many.rs.

mod support;

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rivulet_core::bitfield::Bitfield;
use rivulet_fuse::{MountOptions, STATUS_PATH, Torrents};
use support::*;

const LIMIT: Duration = Duration::from_secs(20);

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn memory(fx: &Fixture) -> MemorySource {
    MemorySource::new(fx, Bitfield::full(fx.meta.piece_count()))
}

#[test]
fn torrents_come_and_go_while_mounted_and_clashing_names_get_the_short_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let torrents: Torrents<MemorySource> = Torrents::new(Duration::ZERO);
    let mount =
        rivulet_fuse::mount_torrents(&torrents, tmp.path(), MountOptions::default()).unwrap();
    let dir = mount.dir().to_owned();
    assert!(
        within(LIMIT, {
            let dir = dir.clone();
            move || names(&dir)
        })
        .is_empty()
    );

    let album = torrent("album", &[("a.txt", 1000), ("b/c.bin", 70_001)], 16384);
    let film = torrent("film.mkv", &[("film.mkv", 50_000)], 16384);
    // Same name, other content: another info-hash.
    let film2 = torrent("film.mkv", &[("film.mkv", 50_001)], 16384);
    assert_eq!(torrents.add(memory(&album), album.meta.clone()), "album");
    assert_eq!(torrents.add(memory(&film), film.meta.clone()), "film.mkv");
    let short = &film2.meta.info_hash.hex()[..8];
    let clash = format!("film-{short}.mkv");
    assert_eq!(torrents.add(memory(&film2), film2.meta.clone()), clash);
    let listed = within(LIMIT, {
        let dir = dir.clone();
        move || names(&dir)
    });
    assert_eq!(listed, ["album", &clash, "film.mkv"]);
    assert_eq!(
        std::fs::read(dir.join(&clash)).unwrap(),
        film2.file_data(0),
        "the suffixed entry serves its own torrent"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(STATUS_PATH)).unwrap()).unwrap();
    let listed: Vec<&str> = status["torrents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["path"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["album", "film.mkv", clash.as_str()]);

    // An open file of a torrent that leaves fails cleanly; the others read on.
    let open = std::fs::File::open(dir.join("album/b/c.bin")).unwrap();
    let other = std::fs::File::open(dir.join("film.mkv")).unwrap();
    assert_eq!(
        torrents.remove(&album.meta.info_hash).as_deref(),
        Some("album")
    );
    let listed = within(LIMIT, {
        let dir = dir.clone();
        move || names(&dir)
    });
    assert_eq!(listed, [&clash, "film.mkv"]);
    assert!(!dir.join("album").exists());
    let mut buf = [0u8; 100];
    let err = open.read_at(&mut buf, 20_000).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let mut whole = Vec::new();
    (&other).read_to_end(&mut whole).unwrap();
    assert_eq!(whole, film.file_data(0));
    assert!(torrents.remove(&album.meta.info_hash).is_none());
    drop((open, other));
    mount.unmount().unwrap();
}

#[test]
fn a_root_listing_waits_for_a_torrent_on_its_way_and_no_longer_than_the_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let torrents: Torrents<MemorySource> = Torrents::new(Duration::from_secs(3));
    let mount =
        rivulet_fuse::mount_torrents(&torrents, tmp.path(), MountOptions::default()).unwrap();
    let dir = mount.dir().to_owned();
    let fx = torrent("late.bin", &[("late.bin", 4000)], 16384);
    let pending = torrents.pending();
    let (tx, rx) = mpsc::channel();
    let lister = std::thread::spawn({
        let dir = dir.clone();
        move || {
            let _ = tx.send(());
            names(&dir)
        }
    });
    rx.recv().unwrap();
    // Nothing to await here but the absence of an answer: give the listing time to return.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!lister.is_finished(), "the listing did not wait");
    torrents.add(memory(&fx), fx.meta.clone());
    drop(pending);
    assert_eq!(lister.join().unwrap(), ["late.bin"]);

    // A torrent that never comes holds a listing back only for the bound.
    let _stuck = torrents.pending();
    let started = Instant::now();
    let listed = within(LIMIT, {
        let dir = dir.clone();
        move || names(&dir)
    });
    assert_eq!(listed, ["late.bin"]);
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    drop(_stuck);
    mount.unmount().unwrap();
}
