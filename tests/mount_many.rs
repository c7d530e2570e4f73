//! Several torrents in one `rivulet mount`, from real aria2 seeders: named on the command line
//! and dropped into (or deleted from) a watch folder while files are being read; a restart with
//! the same folder resumes them all. Also what ordinary tools see of a mount: the control
//! folder hidden from the root's listing, fixed times, a 2,000-file torrent listed at once with
//! no placeholder files written.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rivulet_tests::aria2::{Aria2Seeder, SeederOptions};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::make_torrent::{PayloadFile, multi_file};
use rivulet_tests::mount::{MountCmd, Mounted, STATUS_PATH, files_in};
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::process::wait_for;
use rivulet_tests::tracker::Tracker;
use rivulet_tests::verify::{assert_same_files, sha1_file};
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(120);

/// The files of `fixtures`, as the root of a mount of them all shows them.
fn tree_of(fixtures: &[&Fixture]) -> BTreeMap<PathBuf, u64> {
    fixtures
        .iter()
        .flat_map(|f| f.files.iter().map(|e| (e.rel.clone(), e.len)))
        .collect()
}

fn root_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Reads `fixture`'s first file through the mount on a thread; its hash is checked on join.
fn stream(mount: &Mounted, file: &'static Fixture) -> std::thread::JoinHandle<()> {
    let f = &file.files[file.files.len() - 1];
    let path = mount.path(&f.rel);
    std::thread::spawn(move || {
        let got = sha1_file(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        assert_eq!(
            got,
            f.sha1_hex,
            "{} streamed through the mount",
            path.display()
        );
    })
}

/// The info-hashes the status document lists.
fn listed(mount: &Mounted) -> Vec<String> {
    let status = mount.status();
    let mut v: Vec<String> = status["torrents"]
        .as_array()
        .unwrap_or_else(|| panic!("no torrents in {status}"))
        .iter()
        .map(|t| t["info_hash"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

fn hashes(fixtures: &[&Fixture]) -> Vec<String> {
    let mut v: Vec<String> = fixtures.iter().map(|f| f.info_hash_hex()).collect();
    v.sort();
    v
}

fn unmount(mut mount: Mounted) {
    let out = mount.fusermount_u();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = mount.wait_exit(Duration::from_secs(30));
    assert!(
        st.success(),
        "rivulet mount exited with {st}:\n{}",
        mount.proc.log_tail(3000)
    );
}

#[test]
fn three_torrents_share_a_mount_the_watch_folder_adds_and_removes_and_a_restart_resumes_all() {
    let work = WorkDir::new("mount_many");
    // a: multi-file, on the command line; b: single file, on the command line, streamed while
    // d joins; c: in the watch folder from the start, deleted while d is read; d: dropped in.
    let (a, b, c, d) = (
        Fixture::multi_small(),
        Fixture::single_small(),
        Fixture::media(),
        Fixture::multi(),
    );
    let all = [a, b, c, d];
    let hashes_all: Vec<[u8; 20]> = all.iter().map(|f| f.meta.info_hash).collect();
    let tracker = Tracker::start(&work.subdir("tracker"), &hashes_all);
    let url = tracker.http_url();
    let _seeders: Vec<Aria2Seeder> = all
        .iter()
        .map(|f| {
            let torrent = f.torrent(&url, "seed", work.path());
            // b slowly, so that reading it overlaps the drop of d.
            let upload_limit = if f.id == b.id { 256 << 10 } else { 0 };
            Aria2Seeder::start(
                work.path(),
                f,
                &torrent,
                &tracker,
                SeederOptions {
                    upload_limit,
                    ..SeederOptions::default()
                },
            )
        })
        .collect();
    let torrents: Vec<PathBuf> = all
        .iter()
        .map(|f| f.torrent(&url, "mount", work.path()))
        .collect();
    let watch = work.subdir("watch");
    std::fs::copy(&torrents[2], watch.join("c.torrent")).unwrap();
    let cmd = |events: &str| {
        MountCmd::many(&[&torrents[0], &torrents[1]], &work.subdir("mnt"))
            .watch(&watch)
            .data(&work.subdir("data"))
            .listen(free_addr(LOCALHOST))
            .events(&work.join(events))
    };
    let mount = cmd("events-1.jsonl").spawn(work.path(), "mount-1");

    // The first listing already holds the watch folder's torrent.
    assert_eq!(files_in(&mount.dir), tree_of(&[a, b, c]));
    assert_eq!(listed(&mount), hashes(&[a, b, c]));
    for f in [a, c] {
        assert_same_files(f, &mount.dir, "the mount");
    }

    // d dropped in while b streams.
    let reader = stream(&mount, b);
    let dropped = Instant::now();
    std::fs::copy(&torrents[3], watch.join("d.torrent")).unwrap();
    let d_top = mount.path(d.name());
    wait_for(Duration::from_secs(10), "d to appear in the mount", || {
        d_top.exists()
    });
    let appeared = dropped.elapsed();
    eprintln!("a dropped .torrent appeared in the mount after {appeared:?}");
    assert!(appeared < Duration::from_secs(3), "{appeared:?}");
    assert!(
        !reader.is_finished(),
        "the stream of b ended before d was dropped"
    );
    reader.join().unwrap();
    assert_same_files(d, &mount.dir, "the mount");

    // c leaves while d is read.
    let reader = stream(&mount, d);
    std::fs::remove_file(watch.join("c.torrent")).unwrap();
    let c_top = mount.path(c.name());
    wait_for(Duration::from_secs(10), "c to leave the mount", || {
        !c_top.exists()
    });
    reader.join().unwrap();
    assert_eq!(files_in(&mount.dir), tree_of(&[a, b, d]));
    assert_eq!(listed(&mount), hashes(&[a, b, d]));
    let kept = work.subdir("data").join(&c.files[0].rel);
    assert_eq!(
        std::fs::metadata(&kept).map(|m| m.len()).ok(),
        Some(c.files[0].len),
        "a removed torrent's data stays"
    );
    let events = mount.events();
    assert!(
        events
            .of("removed")
            .any(|e| e["torrent"] == c.info_hash_hex().as_str()),
        "{}",
        events.tail(10)
    );
    unmount(mount);

    // Same command, same folder: the same mount, every piece resumed and none fetched again.
    let mut mount = cmd("events-2.jsonl").spawn(work.path(), "mount-2");
    assert_eq!(files_in(&mount.dir), tree_of(&[a, b, d]));
    for f in [a, b, d] {
        mount.wait_events(BOUND, "every torrent to resume", |e| {
            e.of("resumed")
                .any(|r| r["torrent"] == f.info_hash_hex().as_str())
        });
        let events = mount.events();
        let resumed = events
            .of("resumed")
            .find(|r| r["torrent"] == f.info_hash_hex().as_str())
            .unwrap();
        assert_eq!(resumed["pieces"], f.meta.piece_count(), "{resumed}");
        assert_same_files(f, &mount.dir, "the resumed mount");
    }
    assert!(
        !mount.events().has("piece_verified"),
        "pieces fetched again after a restart"
    );
    unmount(mount);
}

#[test]
fn a_bad_file_in_the_watch_folder_is_reported_and_skipped_and_the_others_keep_working() {
    let work = WorkDir::new("mount_many_bad");
    let good = Fixture::single_small();
    let tracker = Tracker::start(&work.subdir("tracker"), &[good.meta.info_hash]);
    let url = tracker.http_url();
    let _seeder = Aria2Seeder::start(
        work.path(),
        good,
        &good.torrent(&url, "seed", work.path()),
        &tracker,
        SeederOptions::default(),
    );
    let watch = work.subdir("watch");
    std::fs::write(watch.join("garbage.torrent"), b"this is not bencode").unwrap();
    std::fs::write(watch.join("film.magnet"), "magnet:?xt=urn:btih:1234\n").unwrap();
    std::fs::copy(
        good.torrent(&url, "mount", work.path()),
        watch.join("good.torrent"),
    )
    .unwrap();
    let mut mount = MountCmd::many(&[], &work.subdir("mnt"))
        .watch(&watch)
        .data(&work.subdir("data"))
        .listen(free_addr(LOCALHOST))
        .events(&work.join("events.jsonl"))
        .spawn(work.path(), "mount");
    assert_eq!(root_names(&mount.dir), [good.name()]);
    let skipped = |mount: &Mounted| -> BTreeMap<String, String> {
        let status = mount.status();
        status["watch"]["skipped"]
            .as_array()
            .unwrap_or_else(|| panic!("no watch.skipped in {status}"))
            .iter()
            .map(|s| {
                let file = Path::new(s["file"].as_str().unwrap());
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                (name, s["error"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    let now = skipped(&mount);
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(
        now["garbage.torrent"].contains("not a valid torrent"),
        "{now:?}"
    );
    assert!(
        now["film.magnet"].contains("neither 40 hex digits nor 32 base32"),
        "{now:?}"
    );
    assert_eq!(mount.events().of("watch_skipped").count(), 2);

    // One more while mounted: reported as well, the good torrent reads on.
    std::fs::write(watch.join("empty.torrent"), b"").unwrap();
    mount.wait_events(
        Duration::from_secs(10),
        "the new bad file to be reported",
        |e| e.of("watch_skipped").count() == 3,
    );
    assert_eq!(skipped(&mount).len(), 3);
    assert_same_files(good, &mount.dir, "the mount");
    assert_eq!(root_names(&mount.dir), [good.name()]);
    // Deleting a bad file clears its report.
    std::fs::remove_file(watch.join("garbage.torrent")).unwrap();
    wait_for(Duration::from_secs(10), "the report to clear", || {
        skipped(&mount).len() == 2
    });
    unmount(mount);
}

#[test]
fn the_control_folder_is_hidden_times_are_fixed_and_2000_files_list_without_placeholders() {
    let work = WorkDir::new("mount_many_tree");
    let files: Vec<PayloadFile> = (0..2000)
        .map(|i| PayloadFile {
            path: vec![
                format!("d{}", i / 100).into_bytes(),
                format!("f{i}.txt").into_bytes(),
            ],
            data: format!("file {i}\n").into_bytes(),
        })
        .collect();
    // No peer will ever have it: only the listing is looked at, never the data.
    let torrent = work.join("many.torrent");
    std::fs::write(
        &torrent,
        multi_file(b"many", &files, 16384, "http://127.0.0.1:1/announce"),
    )
    .unwrap();
    let data = work.subdir("data");
    let mount = MountCmd::new(&torrent, &work.subdir("mnt"))
        .data(&data)
        .listen(free_addr(LOCALHOST))
        .lazy()
        .spawn(work.path(), "mount");

    let listed = files_in(&mount.dir);
    assert_eq!(listed.len(), 2000);
    assert_eq!(listed[Path::new("many/d7/f777.txt")], 9);
    // Hidden from the root's listing, reachable by name.
    assert_eq!(root_names(&mount.dir), ["many"]);
    let status = mount.status();
    assert_eq!(
        status["torrents"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    assert!(std::fs::metadata(mount.path(".rivulet")).unwrap().is_dir());

    // One time for every entry, the same at every call: the torrent names no creation date.
    let times = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.mtime(), m.mtime_nsec(), m.ctime())
    };
    let first = times(&mount.dir);
    for p in ["many", "many/d3", "many/d3/f301.txt", STATUS_PATH] {
        assert_eq!(times(&mount.path(p)), first, "{p}");
    }
    assert_eq!(times(&mount.path("many/d3/f301.txt")), first);
    assert_eq!(first.0, first.2);
    assert!(
        first.0 < 1_500_000_000,
        "a fixed time, not the mount's: {first:?}"
    );

    // Listing created no data files: they appear with their first piece.
    let mut placeholders = Vec::new();
    let mut dirs = vec![data.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                placeholders.push(e.path());
            }
        }
    }
    assert!(placeholders.is_empty(), "{placeholders:?}");
    unmount(mount);
}
