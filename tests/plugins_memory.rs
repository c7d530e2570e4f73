//! The memory storage plugin under a real mount: `rivulet mount --storage memory` with a cache
//! far smaller than the torrent serves the whole file correctly through FUSE from a real aria2
//! seeder, and the process's anonymous memory stays near the configured bound while it does.

mod plugins_support;

use std::io::Read;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plugins_support::memory_config;
use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::mount::MountCmd;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::swarm::Swarm;
use rivulet_tests::torrent::hex;
use rivulet_tests::tracker::Announce;
use rivulet_tests::workdir::WorkDir;
use sha1::{Digest, Sha1};

const MIB: u64 = 1 << 20;
/// The memory storage's bound, `memory_cache_mib`.
const CACHE_MIB: u64 = 8;
/// What the rest of the process may add on top of the cache: the binary, thread stacks, pieces
/// being assembled and verified, FUSE read buffers, allocator slack. The 64 MiB fixture is well
/// above cache + slack, so a storage that kept what it was given would fail the test.
const SLACK_MIB: u64 = 40;
const READ_BOUND: Duration = Duration::from_secs(240);

/// (VmRSS, RssAnon) of `pid` in bytes, if it still runs.
fn rss(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    Some((field("VmRSS:")?, field("RssAnon:")?))
}

/// Reads `path` to the end in 1 MiB reads; its SHA-1 (hex) and length.
fn sha1_of(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; MIB as usize];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((hex(&hasher.finalize()), len));
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

#[test]
fn memory_storage_mount_serves_a_torrent_larger_than_its_bound_within_it() {
    let work = WorkDir::new("plugins-memory-mount");
    let fixture = Fixture::single();
    assert!(fixture.total_length() > (CACHE_MIB + SLACK_MIB) * MIB);
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);
    let cfg = memory_config(&work, CACHE_MIB);
    let mnt = work.subdir("mnt");
    let events = work.join("events.jsonl");
    let mut mounted = MountCmd::new(&torrent, &mnt)
        .config(&cfg)
        .listen(free_addr(LOCALHOST))
        .events(&events)
        .read_timeout(60)
        .spawn(work.path(), "mount");
    let file = mnt.join(&fixture.files[0].rel);
    let (picker, storage) = {
        let ev = rivulet_tests::events::Events::read(&events);
        plugins_support::started(&ev)
    };
    assert_eq!((picker.as_str(), storage.as_str()), ("streaming", "memory"));

    let pid = mounted.proc.pid();
    let (done_tx, done_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let result = sha1_of(&file);
        let _ = done_tx.send(());
        result
    });
    let (mut max_rss, mut max_anon, mut samples) = (0u64, 0u64, 0u32);
    let start = Instant::now();
    loop {
        if let Some((vm, anon)) = rss(pid) {
            max_rss = max_rss.max(vm);
            max_anon = max_anon.max(anon);
            samples += 1;
        }
        match done_rx.recv_timeout(Duration::from_millis(20)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if start.elapsed() > READ_BOUND {
            panic!(
                "reading the file through the mount took over {READ_BOUND:?}; log tail:\n{}",
                mounted.proc.log_tail(3000)
            );
        }
        mounted
            .proc
            .assert_running("the file was read through the mount");
    }
    let (sha1, len) = reader.join().expect("reader thread").unwrap_or_else(|e| {
        panic!(
            "reading through the mount: {e}\n{}",
            mounted.proc.log_tail(3000)
        )
    });
    let took = start.elapsed();
    eprintln!(
        "read {} MiB through the mount in {took:.1?}; max VmRSS {} MiB, max RssAnon {} MiB \
         over {samples} samples (cache bound {CACHE_MIB} MiB)",
        len / MIB,
        max_rss / MIB,
        max_anon / MIB
    );
    assert_eq!(len, fixture.files[0].len);
    assert_eq!(
        sha1, fixture.files[0].sha1_hex,
        "wrong data through the mount"
    );
    assert!(samples >= 5, "too few RSS samples ({samples}) to judge");
    assert!(
        max_anon <= (CACHE_MIB + SLACK_MIB) * MIB,
        "RssAnon reached {} MiB with memory_cache_mib = {CACHE_MIB} (bound {} MiB)",
        max_anon / MIB,
        CACHE_MIB + SLACK_MIB
    );
    // A small cache must not make the reader fetch pieces again and again: the torrent comes
    // over the wire about once.
    let downloaded = mounted.status()["downloaded"].as_u64().unwrap_or(u64::MAX);
    assert!(
        downloaded <= fixture.total_length() + fixture.total_length() / 4,
        "fetched {} MiB to read a {} MiB file once",
        downloaded / MIB,
        fixture.total_length() / MIB
    );
    mounted.terminate(Duration::from_secs(30));
}
