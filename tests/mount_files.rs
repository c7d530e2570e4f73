//! `rivulet mount` with the real engine and a real aria2 seeder: the tree is complete before any
//! data arrives, every file read through the mount is byte-exact, progress shows inside the
//! mount, and the mount seeds what it has to another peer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rivulet_tests::aria2::{Aria2Leecher, Aria2Seeder, SeederOptions};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::mount::{MountCmd, Mounted, files_in, progress_xattr};
use rivulet_tests::ports::{LOCALHOST, free_addr, own_loopback};
use rivulet_tests::tracker::Tracker;
use rivulet_tests::verify::{assert_same_files, sha1_file};
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(120);

fn expected_tree(fixture: &Fixture) -> BTreeMap<PathBuf, u64> {
    fixture
        .files
        .iter()
        .map(|f| (f.rel.clone(), f.len))
        .collect()
}

/// Mounts `fixture` while no peer has it: the whole tree with exact sizes is there, nothing is
/// verified yet. Then a seeder comes up and every file read through the mount hashes right.
fn tree_first_then_exact_files(test: &str, fixture: &'static Fixture) {
    let work = WorkDir::new(test);
    let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
    let torrent = fixture.torrent(&tracker.http_url(), "http", work.path());
    let events = work.join("events.jsonl");
    let mut mount = MountCmd::new(&torrent, &work.subdir("mnt"))
        .data(&work.subdir("data"))
        .listen(free_addr(LOCALHOST))
        .events(&events)
        .spawn(work.path(), "mount");

    assert_eq!(files_in(&mount.dir), expected_tree(fixture));
    let status = mount.status();
    assert_eq!(status["pieces_have"], 0, "{status}");
    assert_eq!(
        status["pieces_total"],
        fixture.meta.piece_count(),
        "{status}"
    );
    let top = mount.path(fixture.name());
    assert!(
        progress_xattr(&top).starts_with("0.0% 0/"),
        "{}",
        progress_xattr(&top)
    );
    assert!(!mount.events().has("piece_verified"));

    // The seeder learns of the mount from the tracker and connects to it.
    let torrent_seed = fixture.torrent(&tracker.http_url(), "seed", work.path());
    let _seeder = Aria2Seeder::start(
        work.path(),
        fixture,
        &torrent_seed,
        &tracker,
        SeederOptions::default(),
    );
    for f in &fixture.files {
        let got = sha1_file(&mount.path(&f.rel))
            .unwrap_or_else(|e| panic!("reading {} through the mount: {e}", f.rel.display()));
        assert_eq!(got, f.sha1_hex, "{} through the mount", f.rel.display());
    }
    mount.wait_events(BOUND, "the download to complete", |e| e.has("complete"));
    let status = mount.status();
    assert_eq!(
        status["pieces_have"],
        fixture.meta.piece_count(),
        "{status}"
    );
    assert_eq!(status["complete"], true, "{status}");
    assert_eq!(
        progress_xattr(&top),
        format!("100.0% {0}/{0} pieces", fixture.meta.piece_count())
    );
    unmount_cleanly(mount);
}

fn unmount_cleanly(mut mount: Mounted) {
    let out = mount.fusermount_u();
    assert!(
        out.status.success(),
        "fusermount3 -u: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = mount.wait_exit(Duration::from_secs(20));
    assert!(
        st.success(),
        "rivulet mount exited with {st}; log tail:\n{}",
        mount.proc.log_tail(3000)
    );
    assert!(!mount.is_mounted());
    assert_eq!(std::fs::read_dir(&mount.dir).unwrap().count(), 0);
}

#[test]
fn single_64mib_file_tree_then_exact_data() {
    tree_first_then_exact_files("mount-single", Fixture::single());
}

#[test]
fn nested_multi_file_tree_then_exact_data() {
    tree_first_then_exact_files("mount-multi", Fixture::multi());
}

/// Once the mount holds the whole torrent, an aria2 leecher downloads it from the mount's
/// listen address while no other seeder runs.
#[test]
fn mount_seeds_while_mounted() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("mount-seeds");
    let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
    let torrent = fixture.torrent(&tracker.http_url(), "http", work.path());
    let listen = free_addr(LOCALHOST);
    let events = work.join("events.jsonl");
    let mut mount = {
        let torrent_seed = fixture.torrent(&tracker.http_url(), "seed", work.path());
        let seeder = Aria2Seeder::start(
            work.path(),
            fixture,
            &torrent_seed,
            &tracker,
            SeederOptions::default(),
        );
        let mut mount = MountCmd::new(&torrent, &work.subdir("mnt"))
            .data(&work.subdir("data"))
            .listen(listen)
            .events(&events)
            .peer(seeder.addr)
            .spawn(work.path(), "mount");
        mount.wait_events(BOUND, "the download to complete", |e| e.has("complete"));
        mount
        // The seeder stops here.
    };
    assert_same_files(fixture, &mount.dir, "mount before seeding");
    let out = work.subdir("leech");
    let torrent_leech = fixture.torrent(&tracker.http_url(), "leech", work.path());
    let mut leecher = Aria2Leecher::start(work.path(), &torrent_leech, &out, own_loopback());
    leecher.wait_done(BOUND);
    assert_same_files(fixture, &out, "aria2 leecher of the mount");
    mount.proc.assert_running("seeding");
    assert!(
        mount.status()["uploaded"].as_u64() >= Some(fixture.total_length()),
        "{}",
        mount.status()
    );
    unmount_cleanly(mount);
}
