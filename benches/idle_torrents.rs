//! Fifty torrents in one `rivulet mount`: memory per idle torrent and the time to list the
//! mount root.
//!
//! Run with `bash benches/run.sh idle_torrents` (release build, network namespace holding only
//! `lo`). The torrents are 16 MiB of zeros each, made by the harness's torrent maker, announcing
//! to a tracker nobody listens on: no peer ever comes, so every torrent stays idle. For each run,
//! a mount of 1 torrent and a mount of 50, each left to settle, then:
//!   RSS per idle torrent  ((VmRSS with 50) - (VmRSS with 1)) / 49
//!   first listing         the first `read_dir` of the mount root once the kernel lists the mount
//!   listing               `read_dir` of the root with all 50 listed (median of 5)
//! Env: RIVULET_BENCH_RUNS or BENCH_RUNS (default 3), BENCH_TORRENTS (default 50).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rivulet_tests::make_torrent::zeros;
use rivulet_tests::mount::{MountCmd, Mounted};
use rivulet_tests::netns::assert_isolated_network;
use rivulet_tests::ports::{LOCALHOST, free_addr, free_port};
use rivulet_tests::proc_stats::status_kib;
use rivulet_tests::process::wait_for;
use rivulet_tests::workdir::WorkDir;

/// Time left for the engine to reach its idle state (tracker refused, tasks parked) before RSS
/// is read: a measurement window, not a synchronisation.
const SETTLE: Duration = Duration::from_secs(3);

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn list(dir: &Path) -> (usize, f64) {
    let t = Instant::now();
    let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    (n, t.elapsed().as_secs_f64())
}

struct Sample {
    rss_kib: u64,
    first_list: f64,
    list: f64,
}

/// Mounts `torrents`, waits until the kernel lists the mount, times the first listing, waits
/// until every torrent is listed, times five listings, settles and reads VmRSS.
fn measure(work: &WorkDir, tag: &str, torrents: &[PathBuf]) -> Sample {
    let mnt = work.subdir(&format!("mnt-{tag}"));
    let refs: Vec<&Path> = torrents.iter().map(PathBuf::as_path).collect();
    let mut m: Mounted = MountCmd::many(&refs, &mnt)
        .data(&work.subdir(&format!("data-{tag}")))
        .listen(free_addr(LOCALHOST))
        .no_dht()
        .spawn(work.path(), tag);
    let (_, first_list) = list(&mnt);
    wait_for(Duration::from_secs(60), "every torrent listed", || {
        m.proc.assert_running("mounting");
        list(&mnt).0 >= torrents.len()
    });
    let lists: Vec<f64> = (0..5).map(|_| list(&mnt).1).collect();
    std::thread::sleep(SETTLE);
    let rss_kib = status_kib(m.proc.pid(), "VmRSS").expect("VmRSS of rivulet");
    drop(m);
    Sample {
        rss_kib,
        first_list,
        list: median(&lists),
    }
}

fn main() {
    assert_isolated_network();
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let runs = env("RIVULET_BENCH_RUNS", env("BENCH_RUNS", 3));
    let count = env("BENCH_TORRENTS", 50).max(2);
    let work = WorkDir::new("bench-idle-torrents");
    // Nobody listens there: announces fail at once and no peer is ever learnt.
    let announce = format!("http://{LOCALHOST}:{}/announce", free_port(LOCALHOST));
    let torrents: Vec<PathBuf> = (0..count)
        .map(|i| {
            let path = work.join(&format!("idle-{i:02}.torrent"));
            let bytes = zeros(&format!("idle-{i:02}.bin"), 16 << 20, 256 << 10, &announce);
            std::fs::write(&path, bytes).expect("write .torrent");
            path
        })
        .collect();
    println!("# {count} idle torrents of 16 MiB (256 KiB pieces), {runs} runs");
    let (mut per, mut first, mut listing, mut one_rss, mut all_rss) =
        (vec![], vec![], vec![], vec![], vec![]);
    for run in 1..=runs {
        let one = measure(&work, &format!("one-{run}"), &torrents[..1]);
        let all = measure(&work, &format!("all-{run}"), &torrents);
        let each = (all.rss_kib as f64 - one.rss_kib as f64) / (count - 1) as f64;
        println!(
            "run {run}: RSS 1 torrent {} KiB, {count} torrents {} KiB -> {each:.0} KiB per idle torrent; \
             root listing: first {:.2} ms, with {count} listed {:.2} ms (1 torrent: {:.2} ms)",
            one.rss_kib,
            all.rss_kib,
            all.first_list * 1e3,
            all.list * 1e3,
            one.list * 1e3
        );
        per.push(each);
        first.push(all.first_list);
        listing.push(all.list);
        one_rss.push(one.rss_kib as f64);
        all_rss.push(all.rss_kib as f64);
    }
    println!("\n# medians");
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| VmRSS, 1 torrent | {:.1} MiB |",
        median(&one_rss) / 1024.0
    );
    println!(
        "| VmRSS, {count} torrents | {:.1} MiB |",
        median(&all_rss) / 1024.0
    );
    println!("| RSS per idle torrent | {:.0} KiB |", median(&per));
    println!(
        "| first listing of the root after mount | {:.2} ms |",
        median(&first) * 1e3
    );
    println!(
        "| listing of the root, {count} listed | {:.2} ms |",
        median(&listing) * 1e3
    );
}
