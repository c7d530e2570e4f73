//! One rivulet per torrent's data, and one mount per mount point, between real processes: a
//! second `rivulet` on data another one holds is refused in one line naming the holder's pid
//! and command line, and the first one's files stay intact and served. Before the fix a
//! same-named torrent resized a running seed's file, the same torrent mounted twice with the
//! default cache folder downloaded into the same files twice, and a mount point rivulet already
//! held was reported as "not empty".
//!
//! Needs FUSE (root, /dev/fuse) and a private mount namespace (tests/run-all.sh).

use std::ffi::OsString;
use std::time::Duration;

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::make_torrent::{PayloadFile, multi_file};
use rivulet_tests::mount::MountCmd;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::rivulet;
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::{assert_same_files, sha1_file};
use rivulet_tests::workdir::WorkDir;

/// Nothing listens there.
const NO_TRACKER: &str = "http://127.0.0.1:9/announce";

#[test]
fn a_download_of_a_same_named_torrent_into_a_running_seeds_folder_is_refused() {
    let fixture = Fixture::multi_small();
    let work = WorkDir::new("lock-seed-download");
    let torrent = fixture.torrent(NO_TRACKER, "seed", work.path());
    let data = work.subdir("data");
    fixture.copy_payload(&data);
    let mut seed = rivulet::seed(
        work.path(),
        &torrent,
        &data,
        free_addr(LOCALHOST),
        &work.join("seed-events.jsonl"),
    );

    // Another torrent of the same name whose c.txt is five times longer.
    let other = work.join("other.torrent");
    let files = [PayloadFile {
        path: vec![b"c.txt".to_vec()],
        data: vec![7; 5000],
    }];
    std::fs::write(
        &other,
        multi_file(fixture.name().as_bytes(), &files, 16384, NO_TRACKER),
    )
    .unwrap();
    let args: Vec<OsString> = vec![
        "download".into(),
        other.into(),
        "--output".into(),
        data.clone().into(),
        "--listen".into(),
        free_addr(LOCALHOST).to_string().into(),
        "--state-dir".into(),
        work.join("state").into(),
    ];
    let second = rivulet::run(work.path(), "download", &args, Duration::from_secs(30));
    second.assert_clean_failure("download into a seeded folder");
    let want = format!(
        "{} is in use by another rivulet (pid {}: ",
        data.join(fixture.name()).display(),
        seed.proc.pid()
    );
    assert!(
        second.stderr.contains(&want),
        "no {want:?} in {}",
        second.stderr
    );
    assert!(second.stderr.contains(" seed "), "{}", second.stderr);

    assert_same_files(fixture, &data, "the seed's data");
    seed.proc.assert_running("after the refused download");
    seed.terminate(Duration::from_secs(15));
}

#[test]
fn the_same_torrent_mounted_twice_with_the_default_cache_is_refused_the_second_time() {
    let fixture = Fixture::single_small();
    let work = WorkDir::new("lock-mount-twice");
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);
    let cache = work.subdir("cache");
    let mount = |mnt: &str| {
        MountCmd::new(&torrent, &work.subdir(mnt))
            .env("XDG_CACHE_HOME", &cache)
            .state_dir(&work.join("state"))
            .listen(free_addr(LOCALHOST))
    };
    let first = mount("mnt-1").spawn(work.path(), "mount-1");
    let file = &fixture.files[0];
    let read_back = || sha1_file(&first.path(&file.rel)).unwrap();
    assert_eq!(read_back(), file.sha1_hex, "read through the first mount");

    let mut second = mount("mnt-2").start(work.path(), "mount-2");
    let status = second.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "the second mount ran ({status})");
    let log = second.proc.log_tail(4000);
    let want = format!("is in use by another rivulet (pid {}: ", first.proc.pid());
    assert!(log.contains(&want), "no {want:?} in {log}");
    assert!(!log.contains("panicked"), "{log}");

    assert!(first.is_mounted());
    assert_eq!(read_back(), file.sha1_hex, "read again after the refusal");
    let cached = cache
        .join("rivulet")
        .join(fixture.info_hash_hex())
        .join(&file.rel);
    assert_eq!(sha1_file(&cached).unwrap(), file.sha1_hex, "the cache file");
}

#[test]
fn mounting_where_rivulet_is_already_mounted_names_it_and_the_unmount_command() {
    let fixture = Fixture::single_small();
    let work = WorkDir::new("mount-point-taken");
    let torrent = fixture.torrent(NO_TRACKER, "mount", work.path());
    let mnt = work.subdir("mnt");
    let first = MountCmd::new(&torrent, &mnt)
        .data(&work.subdir("data-1"))
        .listen(free_addr(LOCALHOST))
        .spawn(work.path(), "mount-1");

    let args: Vec<OsString> = vec![
        "mount".into(),
        torrent.into(),
        mnt.clone().into(),
        "--data".into(),
        work.subdir("data-2").into(),
    ];
    let second = rivulet::run(work.path(), "mount-2", &args, Duration::from_secs(30));
    second.assert_clean_failure("mount on a rivulet mount");
    let want = format!(
        "mount point {0} is already mounted by rivulet; unmount it with `fusermount3 -u {0}`",
        mnt.display()
    );
    assert!(
        second.stderr.contains(&want),
        "no {want:?} in {}",
        second.stderr
    );
    assert!(first.is_mounted());
}
