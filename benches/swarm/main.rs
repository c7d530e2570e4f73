//! Swarm benchmark: every leecher (rivulet, aria2, libtorrent, rqbit if installed) downloads
//! the same data, one after the other, from the same seeders of a scenario, each seeder behind
//! a proxy that gives it its round-trip time, upload rate and, optionally, a point at which it
//! leaves (see `proxy`). The leechers learn the proxies from a tracker of the benchmark's own.
//!
//! A scenario with a `[stream]` table is a streaming one instead (see `stream`): rivulet mount
//! and btfs read from the same swarm, side by side.
//!
//! Run inside a network namespace that holds only `lo`:
//! `bash benches/run.sh swarm [SCENARIO...]` (names of `benches/scenarios/*.toml`, default
//! all). Prints a table and appends it to `benches/RESULTS.md`.
//! Env: RIVULET_BENCH_RUNS (runs per leecher, default 1; the order rotates between runs),
//! RIVULET_BENCH_LEECHERS (e.g. `rivulet,libtorrent`: only these), RIVULET_BENCH_MOUNTS (e.g.
//! `rivulet`: the streaming scenarios' clients, default `rivulet,btfs`), RIVULET_KEEP_TMP=1
//! (keep logs).

mod leechers;
#[path = "../common/mount_client.rs"]
mod mount_client;
mod peer_list;
mod proxy;
mod report;
mod scenario;
mod seeders;
mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rivulet_tests::ports::{LOCALHOST, free_addr, own_loopback};
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

use leechers::Leecher;
use mount_client::Client;
use proxy::{Proxy, RunStats};
use report::Row;
use scenario::{Scenario, SeederSpec};

/// Where seeders "announce": nothing listens there, they are found through their proxies only.
const NO_TRACKER: &str = "http://127.0.0.1:9/announce";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let names: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let paths = if names.is_empty() {
        let mut all: Vec<PathBuf> = std::fs::read_dir(root.join("benches/scenarios"))
            .expect("benches/scenarios")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        all.sort();
        all
    } else {
        names
            .iter()
            .map(|n| root.join(format!("benches/scenarios/{n}.toml")))
            .collect()
    };
    let runs: usize = std::env::var("RIVULET_BENCH_RUNS")
        .ok()
        .map(|v| v.parse().expect("RIVULET_BENCH_RUNS is a number"))
        .unwrap_or(1);
    let only = std::env::var("RIVULET_BENCH_LEECHERS").ok();
    let leechers = Leecher::available(only.as_deref());
    assert!(!leechers.is_empty(), "no leecher left to run");
    eprintln!(
        "leechers: {}",
        leechers
            .iter()
            .map(|l| l.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mounts = Client::parse_list(std::env::var("RIVULET_BENCH_MOUNTS").ok().as_deref());
    let mut rows = Vec::new();
    let mut streams = Vec::new();
    for path in &paths {
        match run_scenario(path, &leechers, &mounts, runs) {
            Outcome::Download(r) => rows.extend(r),
            Outcome::Stream(t) => streams.push(t),
        }
    }
    let mut table = if rows.is_empty() {
        String::new()
    } else {
        report::table(&rows)
    };
    for t in streams {
        table.push_str(if table.is_empty() { "" } else { "\n" });
        table.push_str(&t);
    }
    println!("\n{table}");
    let command = format!("bash benches/run.sh swarm {}", names.join(" "));
    report::append(&root.join("benches/RESULTS.md"), command.trim(), &table);
}

/// A scenario's result: download rows, or a streaming scenario's table.
enum Outcome {
    Download(Vec<Row>),
    Stream(String),
}

fn run_scenario(path: &Path, leechers: &[Leecher], mounts: &[Client], runs: usize) -> Outcome {
    let sc = Scenario::load(path);
    let fixture = sc.fixture();
    let total = fixture.total_length();
    let specs = sc.each_seeder();
    let stem = path.file_stem().map_or("x".into(), |s| s.to_string_lossy());
    let work = WorkDir::new(&format!("bench-swarm-{stem}"));
    eprintln!(
        "{}: {} MiB from {} seeders",
        sc.name,
        total >> 20,
        specs.len()
    );
    let seed_torrent = fixture.torrent(NO_TRACKER, "swarm-seed", work.path());
    let seeders = seeders::start(&work.subdir("seeders"), fixture, &seed_torrent, &specs);
    let full_swarm =
        Duration::from_secs_f64(total as f64 / specs.iter().map(SeederSpec::rate).sum::<f64>());
    let stats = Arc::new(RunStats::default());
    let proxies: Vec<Proxy> = specs
        .iter()
        .zip(&seeders.addrs)
        .map(|(s, &a)| {
            Proxy::start(
                free_addr(own_loopback()),
                a,
                s.link(full_swarm),
                stats.clone(),
            )
        })
        .collect();
    let addrs: Vec<_> = proxies.iter().map(|p| p.addr).collect();
    let url = peer_list::serve(free_addr(LOCALHOST), &addrs);
    let torrent = fixture.torrent(&url, "swarm-leech", work.path());
    if let Some(spec) = &sc.stream {
        let sw = stream::Swarm {
            work: &work,
            fixture,
            torrent: &torrent,
            proxies: &proxies,
            stats: &stats,
        };
        let mut done = Vec::new();
        for run in 0..runs {
            for i in 0..mounts.len() {
                let client = mounts[(i + run) % mounts.len()];
                done.push(stream::run(&sw, spec, client, run));
            }
        }
        return Outcome::Stream(stream::table(&sc.name, spec, &done));
    }
    let bound = caps_allow(&specs, total, full_swarm);

    let mut rows = Vec::new();
    for run in 0..runs {
        for i in 0..leechers.len() {
            let leecher = leechers[(i + run) % leechers.len()];
            proxies.iter().for_each(Proxy::reset);
            stats.reset();
            let dir = work.subdir(&format!("{}-{run}", leecher.name()));
            let out = dir.join("out");
            let o = leecher.run(&dir, &torrent, &out, fixture);
            assert_same_files(fixture, &out, leecher.name());
            // Drops the copy (and its page cache) before the next leecher writes it again.
            let _ = std::fs::remove_dir_all(&out);
            let first = stats.first_connect().unwrap_or(o.launch);
            let row = Row {
                scenario: sc.name.clone(),
                leecher: leecher.name(),
                wall: (o.exit - o.launch).as_secs_f64(),
                transfer: o.exit.saturating_duration_since(first).as_secs_f64(),
                bound,
                size: total,
                excess: stats.down.load(Ordering::SeqCst).saturating_sub(total),
                wasted: o.wasted,
                idle: proxies.iter().map(Proxy::idle).sum(),
            };
            eprintln!("{}", report::line(&row));
            rows.push(row);
        }
    }
    Outcome::Download(rows)
}

/// Seconds the seeders' caps need for `total` bytes, with leaving seeders dropping out on
/// time: the floor any leecher's transfer time can reach (round trips ignored).
fn caps_allow(specs: &[SeederSpec], total: u64, full_swarm: Duration) -> f64 {
    let mut rate: f64 = specs.iter().map(SeederSpec::rate).sum();
    let mut leaving: Vec<(f64, f64)> = specs
        .iter()
        .filter_map(|s| Some((s.leaves_at(full_swarm)?.as_secs_f64(), s.rate())))
        .collect();
    leaving.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut t, mut left) = (0.0, total as f64);
    for (at, r) in leaving {
        if left <= rate * (at - t) {
            break;
        }
        left -= rate * (at - t);
        t = at;
        rate -= r;
    }
    t + left / rate
}
