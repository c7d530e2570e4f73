//! Download benchmark: rivulet against aria2c as the leecher of the 256 MiB "big" fixture from
//! one aria2 seeder on 127.0.0.2 (opentracker on 127.0.0.1, HTTP announce), side by side.
//!
//! Per client and run: the whole run (launch to exit), the connect phase (launch to first peer
//! handshake), the transfer (first handshake to last piece verified) and the anonymous memory
//! (peak RssAnon sampled from /proc while the client runs). rivulet's phases come from its
//! `--events` log (`peer_connected`, `complete`), aria2's from its info-level log (first
//! "From: ... handshake", "Seeding is over"). Runs alternate which client goes first; the end
//! prints the medians and rivulet/aria2 ratios (≤ 1.0 means rivulet is at least as fast).
//!
//! Run it inside a network namespace that holds only `lo`: `bash benches/run.sh download`.
//! Env: RIVULET_BENCH_RUNS (runs per client, default 3), RIVULET_KEEP_TMP=1 (keep logs).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rivulet_tests::aria2::{Aria2Leecher, SeederOptions};
use rivulet_tests::events::Events;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::process::Proc;
use rivulet_tests::rivulet::Download;
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(300);
/// How often the client's memory and exit are looked at; short enough that the exit time is
/// exact to a few ms, long enough that the sampler costs the clients nothing measurable.
const SAMPLE: Duration = Duration::from_millis(5);

#[derive(Clone, Copy, PartialEq)]
enum Client {
    Rivulet,
    Aria2,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Rivulet => "rivulet",
            Client::Aria2 => "aria2c",
        }
    }
}

/// One download's figures, in seconds and bytes.
struct Figures {
    wall: f64,
    connect: f64,
    xfer: f64,
    rss_anon_max: u64,
    /// rivulet only: launch to its events log being opened (engine start), for the analysis.
    startup: Option<f64>,
}

fn main() {
    // aria2 logs local time; UTC makes its timestamps comparable with the system clock.
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("TZ", "UTC") };
    let runs: usize = std::env::var("RIVULET_BENCH_RUNS")
        .ok()
        .map(|v| v.parse().expect("RIVULET_BENCH_RUNS is a number"))
        .unwrap_or(3);
    let fixture = Fixture::big();
    let work = WorkDir::new("bench-download");
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);
    eprintln!(
        "{} ({} MiB, {} pieces of {} KiB) from aria2 seeder {}; {runs} run(s) per client",
        fixture.name(),
        fixture.total_length() >> 20,
        fixture.meta.piece_count(),
        fixture.meta.piece_length >> 10,
        swarm.seeder.addr
    );
    println!(
        "{:>3} {:8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>12}",
        "run", "client", "wall_s", "start_s", "conn_s", "xfer_s", "xfer_MBps", "RssAnon_MiB"
    );

    let mut results: Vec<(Client, Figures)> = Vec::new();
    for run in 0..runs {
        let order = if run % 2 == 0 {
            [Client::Rivulet, Client::Aria2]
        } else {
            [Client::Aria2, Client::Rivulet]
        };
        for client in order {
            let out = work.subdir(&format!("out-{}-{run}", client.name()));
            let f = match client {
                Client::Rivulet => rivulet_run(&work, &torrent, &out, run),
                Client::Aria2 => aria2_run(&work, &torrent, &out),
            };
            assert_same_files(fixture, &out, client.name());
            // Drops the copy and its page cache before the next run writes 256 MiB again.
            let _ = fs::remove_dir_all(&out);
            print_row(run, client, &f, fixture.total_length());
            results.push((client, f));
        }
    }
    print_summary(&results);
}

fn rivulet_run(work: &WorkDir, torrent: &Path, out: &Path, run: usize) -> Figures {
    let events_path = work.join(&format!("events-{run}.jsonl"));
    let launch = SystemTime::now();
    let t0 = Instant::now();
    let mut running = Download::new(torrent, out)
        .listen(free_addr(LOCALHOST))
        .events(&events_path)
        .spawn(work.path(), &format!("rivulet-{run}"));
    let (wall, rss) = watch(&mut running.proc, t0);
    running.wait_success(Duration::from_secs(5));
    let events = Events::read(&events_path);
    let ms = |kind: &str| {
        events
            .of(kind)
            .next()
            .and_then(|l| l["ms"].as_u64())
            .unwrap_or_else(|| panic!("no `{kind}` event:\n{}", events.tail(20)))
    };
    let (connected, complete) = (ms("peer_connected"), ms("complete"));
    // The events clock starts when the file is created (EventSink::to_file).
    let sink_start = fs::metadata(&events_path)
        .and_then(|m| m.created())
        .map(|c| secs(c.duration_since(launch).unwrap_or_default()))
        .unwrap_or(0.0);
    Figures {
        wall,
        connect: sink_start + connected as f64 / 1e3,
        xfer: complete.saturating_sub(connected) as f64 / 1e3,
        rss_anon_max: rss,
        startup: Some(sink_start),
    }
}

fn aria2_run(work: &WorkDir, torrent: &Path, out: &Path) -> Figures {
    let launch = SystemTime::now();
    let t0 = Instant::now();
    let mut leecher = Aria2Leecher::start(work.path(), torrent, out, LOCALHOST);
    let (wall, rss) = watch(leecher.proc_mut(), t0);
    leecher.wait_done(Duration::from_secs(5));
    let log = fs::read_to_string(leecher.log_path()).expect("aria2 log readable");
    let at = |what: &str, pred: &dyn Fn(&str) -> bool| {
        log.lines()
            .find(|l| pred(l))
            .and_then(time_of_day)
            .unwrap_or_else(|| panic!("no {what} in {}", leecher.log_path().display()))
    };
    let handshake = at("peer handshake", &|l| {
        l.contains("From: ") && l.contains(" handshake peerId=")
    });
    let done = at("\"Seeding is over\"", &|l| l.contains("Seeding is over"));
    let launched = time_of_day_utc(launch);
    Figures {
        wall,
        connect: day_diff(launched, handshake),
        xfer: day_diff(handshake, done),
        rss_anon_max: rss,
        startup: None,
    }
}

/// Waits for `proc` to exit, sampling its RssAnon; returns (seconds since `t0`, max RssAnon).
fn watch(proc: &mut Proc, t0: Instant) -> (f64, u64) {
    let status = format!("/proc/{}/status", proc.pid());
    let mut max = 0;
    loop {
        if let Some(kib) = rss_anon_kib(&status) {
            max = max.max(kib * 1024);
        }
        if proc.try_status().is_some() {
            return (secs(t0.elapsed()), max);
        }
        assert!(
            t0.elapsed() < BOUND,
            "{} still running after {BOUND:?}; log tail:\n{}",
            proc.name(),
            proc.log_tail(3000)
        );
        std::thread::sleep(SAMPLE);
    }
}

fn rss_anon_kib(status: &str) -> Option<u64> {
    let text = fs::read_to_string(status).ok()?;
    let line = text.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Seconds since midnight of an aria2 log line ("2026-11-25 07:57:39.081487 [INFO] ...");
/// the bench runs aria2 with TZ=UTC, so this is UTC.
fn time_of_day(line: &str) -> Option<f64> {
    let t = line.get(11..26)?;
    let mut parts = t.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

fn time_of_day_utc(t: SystemTime) -> f64 {
    let d = t.duration_since(UNIX_EPOCH).expect("clock after 1970");
    (d.as_secs() % 86_400) as f64 + d.subsec_nanos() as f64 / 1e9
}

/// `b - a` for two times of day, across midnight.
fn day_diff(a: f64, b: f64) -> f64 {
    (b - a).rem_euclid(86_400.0)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn print_row(run: usize, client: Client, f: &Figures, bytes: u64) {
    let startup = f
        .startup
        .map(|s| format!("{s:.3}"))
        .unwrap_or_else(|| "-".into());
    println!(
        "{:>3} {:8} {:>8.3} {:>8} {:>8.3} {:>8.3} {:>9.1} {:>12.1}",
        run + 1,
        client.name(),
        f.wall,
        startup,
        f.connect,
        f.xfer,
        bytes as f64 / f.xfer.max(1e-9) / 1e6,
        f.rss_anon_max as f64 / (1 << 20) as f64
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn print_summary(results: &[(Client, Figures)]) {
    let of = |c: Client, get: fn(&Figures) -> f64| -> Vec<f64> {
        results
            .iter()
            .filter(|(k, _)| *k == c)
            .map(|(_, f)| get(f))
            .collect()
    };
    println!();
    println!("medians        wall_s  conn_s  xfer_s  RssAnon_max_MiB");
    for c in [Client::Rivulet, Client::Aria2] {
        let rss = results
            .iter()
            .filter(|(k, _)| *k == c)
            .map(|(_, f)| f.rss_anon_max)
            .max()
            .unwrap_or(0);
        println!(
            "{:12} {:>8.3} {:>7.3} {:>7.3} {:>16.1}",
            c.name(),
            median(of(c, |f| f.wall)),
            median(of(c, |f| f.connect)),
            median(of(c, |f| f.xfer)),
            rss as f64 / (1 << 20) as f64
        );
    }
    let ratio = |get: fn(&Figures) -> f64| {
        let r: Vec<f64> = of(Client::Rivulet, get)
            .iter()
            .zip(of(Client::Aria2, get))
            .map(|(r, a)| r / a)
            .collect();
        (median(r.clone()), r)
    };
    for (what, get) in [
        ("wall", (|f: &Figures| f.wall) as fn(&Figures) -> f64),
        ("xfer", |f: &Figures| f.xfer),
    ] {
        let (m, per_run) = ratio(get);
        let list: Vec<String> = per_run.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "ratio rivulet/aria2 {what}: median {m:.2} (per run {}) {}",
            list.join(" "),
            if m <= 1.0 { "OK" } else { "SLOWER" }
        );
    }
}
