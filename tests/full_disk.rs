//! A full disk: `rivulet download` of the 18 MiB multi fixture into an 8 MiB tmpfs exits
//! non-zero with a clear "no space left" error; every piece it reported verified is really on
//! disk with the right bytes. After the tmpfs grows (space freed), the same command resumes
//! those pieces without fetching them again and finishes with an exact copy.
//!
//! Mounts a tmpfs, so it needs root and a private mount namespace (tests/run-all.sh).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::rivulet::{self, Download};
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;
use sha1::{Digest, Sha1};

/// A tmpfs of a given size, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount -t tmpfs failed (needs root)");
        Tmpfs(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(st.success(), "remount of the tmpfs failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Reads piece `index` of `fixture` from the copy under `out`.
fn piece_on_disk(fixture: &Fixture, out: &Path, index: u32) -> Vec<u8> {
    let meta = &fixture.meta;
    let start = index as u64 * meta.piece_length;
    let end = start + meta.piece_len(index);
    let mut buf = Vec::new();
    let mut file_start = 0u64;
    for f in &fixture.files {
        let file_end = file_start + f.len;
        let (a, b) = (start.max(file_start), end.min(file_end));
        if a < b {
            let bytes = std::fs::read(out.join(&f.rel)).unwrap_or_default();
            let (a, b) = ((a - file_start) as usize, (b - file_start) as usize);
            buf.extend_from_slice(bytes.get(a..b).unwrap_or(&[]));
        }
        file_start = file_end;
    }
    buf
}

#[test]
fn full_disk_fails_clearly_and_loses_nothing() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("full-disk");
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);
    let out = work.subdir("small");
    let tmpfs = Tmpfs::mount(&out, "8m");

    let mut args = Download::new(&torrent, &out)
        .listen(free_addr(LOCALHOST))
        .events(&work.join("events-1.jsonl"))
        .args()
        .to_vec();
    args.push("--quiet".into());
    let first = rivulet::run(work.path(), "download-1", &args, Duration::from_secs(120));
    assert!(
        !first.status.success(),
        "a download into 8 MiB of an 18 MiB torrent succeeded"
    );
    assert!(!first.stderr.contains("panicked"), "{}", first.stderr);
    let last = first
        .stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        last.to_lowercase().contains("no space left"),
        "the last error line does not say the disk is full: {last:?}\n{}",
        first.stderr
    );
    assert_eq!(last.lines().count(), 1);

    let ev = rivulet_tests::events::Events::read(&work.join("events-1.jsonl"));
    let before = ev.verified();
    assert!(
        !before.is_empty(),
        "nothing was stored before the disk filled up"
    );
    eprintln!(
        "8 MiB tmpfs: {} of {} pieces stored, then: {last}",
        before.len(),
        fixture.meta.piece_count()
    );
    assert!(ev.has("storage_error"), "no storage_error event");
    for &p in &before {
        let got = piece_on_disk(fixture, &out, p);
        assert!(
            Sha1::digest(&got).as_slice() == fixture.meta.piece_hashes[p as usize],
            "piece {p} was reported verified but is not on disk intact"
        );
    }

    tmpfs.resize("64m");
    let mut second = Download::new(&torrent, &out)
        .listen(free_addr(LOCALHOST))
        .events(&work.join("events-2.jsonl"))
        .spawn(work.path(), "download-2");
    second.wait_success(Duration::from_secs(120));
    assert_same_files(fixture, &out, "download resumed after the disk was freed");
    let ev = second.events();
    let resumed = ev.resumed().expect("resumed event") as usize;
    assert!(
        resumed >= before.len(),
        "resumed {resumed} pieces, the first run had stored {}",
        before.len()
    );
    let refetched: Vec<u32> = ev.verified().intersection(&before).copied().collect();
    assert!(refetched.is_empty(), "fetched again: {refetched:?}");
}
