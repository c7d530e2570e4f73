//! `rivulet mount` against btfs: the same torrent, the same aria2 seeder, fresh mounts.
//!
//! Run with `bash benches/mount_vs_btfs.sh` (release build, inside a network namespace that
//! holds only `lo`: btfs switches on DHT, UPnP and multicast discovery and cannot be told not
//! to). The aria2 seeder sits on 127.0.0.2, alone on its IP, because libtorrent keeps one peer
//! per IP. For each client and run:
//!   A  mount start -> first 64 KiB of the file read back            (time to first byte)
//!   B  fresh mount, file listed -> 1 MiB read at 60 % of the file    (seek)
//!   C  fresh mount, file listed -> `sha1sum` of the whole file       (full read)
//!   D  the mount of C once complete: sequential read through the mount (the mount's page
//!      cache dropped first, so every byte crosses FUSE), then again (from the mount's page
//!      cache), against a plain read of the fixture's original file, warm and cold.
//! With the argument `magnet` (`bash benches/run.sh mount_vs_btfs magnet`), issue 10's figure
//! instead: a magnet link with a `tr` to opentracker, one libtorrent seeder, and per client and
//! run the time from launch to the tree listed and to the first 64 KiB read (no metadata cache:
//! a fresh state directory each time).
//! Env: BENCH_RUNS (default 3), BENCH_FIXTURE (single = 64 MiB, default; big = 256 MiB),
//!      BENCH_CLIENTS (default "rivulet btfs"), BENCH_TRACKER (the magnet's `tr`: http, the
//!      default, or udp).

#[path = "common/mount_client.rs"]
mod mount_client;

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rivulet_tests::aria2::{Aria2Seeder, SeederOptions};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::libtorrent::{LibtorrentNode, Seed};
use rivulet_tests::netns::assert_isolated_network;
use rivulet_tests::ports::own_loopback;
use rivulet_tests::tracker::{Announce, Tracker};
use rivulet_tests::workdir::WorkDir;

use mount_client::{Client, READ_LIMIT, Running, median, timed_read};

const MIB: u64 = 1 << 20;

struct Bench {
    work: WorkDir,
    fixture: &'static Fixture,
    /// What the clients mount: a .torrent path or a magnet link.
    source: OsString,
    /// The single payload file, relative to the mount point.
    rel: PathBuf,
    runs: usize,
    n: usize,
}

impl Bench {
    /// Starts `client` on fresh directories; returns at once, waiting for nothing.
    fn start(&mut self, client: Client) -> Running {
        self.n += 1;
        let tag = format!("{}-{}", client.name(), self.n);
        Running::start(client, &self.work, &tag, &self.source)
    }
}

fn sha1sum(path: &Path) -> Result<(Duration, String), String> {
    let t = Instant::now();
    let out = Command::new("timeout")
        .arg(READ_LIMIT.as_secs().to_string())
        .arg("sha1sum")
        .arg(path)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("sha1sum: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok((
        t.elapsed(),
        text.split(' ').next().unwrap_or_default().to_string(),
    ))
}

/// Drops `path`'s pages from the page cache (clean pages that no process maps).
fn drop_cache(path: &Path) {
    if let Ok(f) = File::open(path) {
        // SAFETY: a valid open descriptor; advice only.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
    }
}

/// Sequential read of the whole file in 1 MiB calls; bytes per second.
fn read_rate(path: &Path) -> f64 {
    let t = Instant::now();
    let mut f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = vec![0u8; MIB as usize];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).expect("sequential read");
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    total as f64 / t.elapsed().as_secs_f64()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[derive(Default)]
struct Figures {
    ttfb: Vec<f64>,
    seek: Vec<f64>,
    full: Vec<f64>,
    through: Vec<f64>,
    reread: Vec<f64>,
    disk_warm: Vec<f64>,
    disk_cold: Vec<f64>,
}

fn run_client(b: &mut Bench, client: Client) -> Figures {
    let mut fig = Figures::default();
    let name = client.name();
    let size = b.fixture.total_length();
    let want_sha1 = b.fixture.files[0].sha1_hex.clone();
    for run in 1..=b.runs {
        // A: time to first byte, from launching the client.
        let t0 = Instant::now();
        let mut m = b.start(client);
        let path = m.wait_listed(&b.rel);
        let listed = t0.elapsed();
        match timed_read(&path, 0, 64 << 10) {
            Ok(_) => {
                let t = t0.elapsed();
                fig.ttfb.push(secs(t));
                println!(
                    "{name} run {run} A: listed {:.3}s first 64 KiB {:.3}s",
                    secs(listed),
                    secs(t)
                );
            }
            Err(e) => println!("{name} run {run} A: FAILED {e}"),
        }
        drop(m);

        // B: 1 MiB at 60 % on a fresh mount.
        let mut m = b.start(client);
        let path = m.wait_listed(&b.rel);
        let offset = size * 6 / 10;
        match timed_read(&path, offset, MIB) {
            Ok((t, got)) => {
                let mut want = vec![0u8; MIB as usize];
                b.fixture.read_at(offset, &mut want).expect("fixture bytes");
                let ok = if got == want { "OK" } else { "WRONG BYTES" };
                fig.seek.push(secs(t));
                println!("{name} run {run} B: 1 MiB at {offset} {:.3}s {ok}", secs(t));
            }
            Err(e) => println!("{name} run {run} B: FAILED {e}"),
        }
        drop(m);

        // C: sha1sum of the whole file on a fresh mount, then D on the same mount.
        let mut m = b.start(client);
        let path = m.wait_listed(&b.rel);
        match sha1sum(&path) {
            Ok((t, sum)) => {
                let ok = if sum == want_sha1 { "OK" } else { "MISMATCH" };
                fig.full.push(secs(t));
                println!(
                    "{name} run {run} C: sha1sum {:.3}s ({:.1} MB/s) {ok}",
                    secs(t),
                    size as f64 / secs(t) / 1e6
                );
            }
            Err(e) => println!("{name} run {run} C: FAILED {e}"),
        }
        // D: everything is local now. Through the mount with its own page cache dropped (the
        // FUSE read path and the client's storage), against the same bytes from a plain file.
        drop_cache(&path);
        let through = read_rate(&path);
        // Again, from the mount's page cache this time (FOPEN_KEEP_CACHE keeps it).
        let reread = read_rate(&path);
        let original = b.fixture.root.join(&b.fixture.files[0].rel);
        read_rate(&original);
        let warm = read_rate(&original);
        drop_cache(&original);
        let cold = read_rate(&original);
        fig.through.push(through);
        fig.reread.push(reread);
        fig.disk_warm.push(warm);
        fig.disk_cold.push(cold);
        println!(
            "{name} run {run} D: through mount {:.0} MB/s (again: {:.0} MB/s); plain file {:.0} MB/s from page cache, {:.0} MB/s cold",
            through / 1e6,
            reread / 1e6,
            warm / 1e6,
            cold / 1e6
        );
        drop(m);
    }
    fig
}

fn main() {
    assert_isolated_network();
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let fixture = match std::env::var("BENCH_FIXTURE").as_deref() {
        Ok("big") => Fixture::big(),
        _ => Fixture::single(),
    };
    let clients = Client::parse_list(std::env::var("BENCH_CLIENTS").ok().as_deref());
    let magnet = std::env::args().skip(1).any(|a| a == "magnet");
    if magnet {
        magnet_mode(fixture, runs.max(1), &clients);
    } else {
        torrent_mode(fixture, runs, &clients);
    }
}

fn torrent_mode(fixture: &'static Fixture, runs: usize, clients: &[Client]) {
    let work = WorkDir::new("bench-mount-vs-btfs");
    let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
    let seed_torrent = fixture.torrent(&tracker.http_url(), "seed", work.path());
    let _seeder = Aria2Seeder::start(
        work.path(),
        fixture,
        &seed_torrent,
        &tracker,
        SeederOptions::default(),
    );
    let torrent = fixture.torrent(&tracker.http_url(), "http", work.path());
    println!(
        "# {} ({} bytes, {} KiB pieces), aria2 seeder {}, {runs} runs, fresh mount each",
        fixture.id,
        fixture.total_length(),
        fixture.meta.piece_length >> 10,
        _seeder.addr
    );
    let mut bench = Bench {
        work,
        fixture,
        rel: fixture.files[0].rel.clone(),
        source: torrent.into_os_string(),
        runs,
        n: 0,
    };
    let mut results = Vec::new();
    for &c in clients {
        results.push((c, run_client(&mut bench, c)));
    }

    println!("\n# medians");
    for (c, f) in &results {
        println!(
            "{:8} first 64 KiB {:.3}s | 1 MiB at 60% {:.3}s | sha1sum {:.3}s | through mount {:.0} MB/s = {:.0}% of page cache, {:.0}% of cold disk (re-read {:.0} MB/s = {:.0}% of page cache)",
            c.name(),
            median(&f.ttfb),
            median(&f.seek),
            median(&f.full),
            median(&f.through) / 1e6,
            100.0 * median(&f.through) / median(&f.disk_warm),
            100.0 * median(&f.through) / median(&f.disk_cold),
            median(&f.reread) / 1e6,
            100.0 * median(&f.reread) / median(&f.disk_warm),
        );
    }
    let get = |c: Client| results.iter().find(|(x, _)| *x == c).map(|(_, f)| f);
    if let (Some(r), Some(b)) = (get(Client::Rivulet), get(Client::Btfs)) {
        let ratio = |x: &[f64], y: &[f64]| median(x) / median(y);
        println!("\n# rivulet / btfs (time ratios: below 1 means rivulet is faster)");
        println!(
            "first 64 KiB {:.2} (target <= 0.50) | 1 MiB at 60% {:.2} (target <= 1) | sha1sum {:.2} (target <= 1) | throughput {:.2}x btfs",
            ratio(&r.ttfb, &b.ttfb),
            ratio(&r.seek, &b.seek),
            ratio(&r.full, &b.full),
            ratio(&r.through, &b.through),
        );
    }
}

/// Issue 10's speed figure: from launching a mount of a magnet link (one `tr`, to opentracker;
/// no .torrent anywhere, no metadata cached) to the payload listed, and to its first 64 KiB
/// read back; one libtorrent seeder serves metadata and data. Clients alternate run by run.
fn magnet_mode(fixture: &'static Fixture, runs: usize, clients: &[Client]) {
    let work = WorkDir::new("bench-mount-magnet");
    let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
    let seed_torrent = fixture.torrent(&tracker.http_url(), "seed", work.path());
    let seeder = LibtorrentNode::start(
        work.path(),
        own_loopback(),
        None,
        Some(Seed {
            torrent: &seed_torrent,
            data: &fixture.root,
        }),
    );
    tracker.wait_lists(
        &fixture.meta.info_hash,
        seeder.addr,
        Duration::from_secs(60),
    );
    let announce = match std::env::var("BENCH_TRACKER").as_deref() {
        Ok("udp") => Announce::Udp,
        _ => Announce::Http,
    };
    let link = fixture.magnet(&tracker.url(announce), &[]);
    println!(
        "# magnet mount: {} ({} bytes), libtorrent seeder {}, {runs} runs, fresh mount and state each\n# {link}",
        fixture.id,
        fixture.total_length(),
        seeder.addr
    );
    let rel = fixture.files[0].rel.clone();
    let mut bench = Bench {
        work,
        fixture,
        rel: rel.clone(),
        source: link.into(),
        runs,
        n: 0,
    };
    // Per client: (listed, first 64 KiB), seconds from launch.
    let mut figs: Vec<(Client, Vec<f64>, Vec<f64>)> = clients
        .iter()
        .map(|&c| (c, Vec::new(), Vec::new()))
        .collect();
    let mut want = vec![0u8; 64 << 10];
    fixture.read_at(0, &mut want).expect("fixture bytes");
    for run in 1..=runs {
        for (client, listed, first) in &mut figs {
            let t0 = Instant::now();
            let mut m = bench.start(*client);
            let path = m.wait_listed(&rel);
            let l = t0.elapsed();
            match timed_read(&path, 0, 64 << 10) {
                Ok((_, got)) => {
                    let f = t0.elapsed();
                    let ok = if got == want { "OK" } else { "WRONG BYTES" };
                    println!(
                        "{} run {run}: listed {:.3}s first 64 KiB {:.3}s {ok}",
                        client.name(),
                        secs(l),
                        secs(f)
                    );
                    listed.push(secs(l));
                    first.push(secs(f));
                }
                Err(e) => println!("{} run {run}: FAILED {e}", client.name()),
            }
        }
    }
    println!("\n# medians over {runs} runs, seconds from launching the mount");
    println!("| client | tree listed | first 64 KiB |\n|---|---:|---:|");
    for (c, listed, first) in &figs {
        println!(
            "| {} | {:.3} | {:.3} |",
            c.name(),
            median(listed),
            median(first)
        );
    }
    let get = |c: Client| figs.iter().find(|(x, _, _)| *x == c);
    if let (Some((_, rl, rf)), Some((_, bl, bf))) = (get(Client::Rivulet), get(Client::Btfs)) {
        println!(
            "| rivulet / btfs (target <= 0.50) | {:.2} | {:.2} |",
            median(rl) / median(bl),
            median(rf) / median(bf)
        );
    }
}
