//! `rivulet serve` against rqbit's HTTP server: the same torrent, the same rate-limited seeder
//! (aria2, or libtorrent with `BENCH_SEEDER=libtorrent`), a fresh server and data directory for
//! every fresh-file figure.
//!
//! Both seeders work in ticks, and where in a tick a client's add falls can decide more of a
//! fresh-file figure than the client does. aria2 answers a handshake only on its ~1 s tick: the
//! 1 MiB at 60 % took 0.81-0.87 s for either client, of which the 1 MiB itself was 8 ms after
//! the connection (rivulet's events); which client got the earlier phase depended on how long
//! its steps before took, so the faster one at the completed file was "slower" here. Every timed
//! add therefore waits a fixed time after the seeder's last transfer, which ends on a tick, so
//! that both clients meet the tick at the same phase ([`SEEDER_PAUSE`]), and with its upload
//! limiter in the same state ([`SEEDER_IDLE`]). libtorrent answers at once but hands out send
//! quota once per tick, by default 500 ms, so a limited libtorrent sends in bursts (ten pieces
//! in 11 ms, then none for 430 ms) and the figure again measured the phase (~0.3 s for either
//! client, for what is 0.16 s at 8 MB/s); its tick is 50 ms here.
//!
//! Run with `bash benches/run.sh http_vs_rqbit` (release build, network namespace holding only
//! `lo`). The seeder is limited to 8 MB/s so that a fresh file really has to be fetched. For each
//! client and run:
//!   A  torrent added over the API -> first 64 KiB of the file over HTTP   (time to first bytes)
//!   B  fresh server, torrent added -> 1 MiB Range read at 60 % of the file  (seek)
//!   C  the server of A once the file is complete: the whole file over HTTP, 5 times (throughput)
//! Env: RIVULET_BENCH_RUNS or BENCH_RUNS (default 3), RQBIT (the rqbit binary; default
//! ~/.cargo/bin/rqbit if present, else `rqbit` on PATH).

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rivulet_tests::aria2::{Aria2Seeder, SeederOptions};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::libtorrent::{LibtorrentNode, SwarmPeer};
use rivulet_tests::netns::assert_isolated_network;
use rivulet_tests::ports::{LOCALHOST, free_addr, free_port, own_loopback};
use rivulet_tests::process::{Proc, wait_for};
use rivulet_tests::serve::{Serve, agent};
use rivulet_tests::tracker::Tracker;
use rivulet_tests::workdir::WorkDir;

const MIB: u64 = 1 << 20;
const SEEDER_RATE: u64 = 8_000_000;
/// libtorrent's tick, for a libtorrent seeder (its default is 500 ms).
const LIBTORRENT_TICK_MS: u32 = 50;
/// From the end of a small transfer from the seeder to the next timed add: longer than what a
/// client does in between (five GETs, a shutdown, a start), so that this does not set the phase.
const SEEDER_PAUSE: Duration = Duration::from_millis(1500);
/// The same after the whole file, a whole number of seconds more: aria2's rate meter spans the
/// last 10 s, and a client that had pulled the file faster than the limit (rivulet took 2-6 s
/// for 8.4 s at 8 MB/s) left it over the limit for the 1 MiB at 60 % that followed (1.51 s
/// against 0.51 s, three runs in four). After this pause the meter is empty for every client
/// alike, the state of a seeder nobody fetched from for a while.
const SEEDER_IDLE: Duration = Duration::from_millis(11_500);
/// Timed GETs of the completed file per run (the figure is the median of all).
const COMPLETE_GETS: usize = 5;

#[derive(Clone, Copy, PartialEq)]
enum Client {
    Rivulet,
    Rqbit,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Rivulet => "rivulet",
            Client::Rqbit => "rqbit",
        }
    }
}

/// A running server of either client, holding the bench's torrent; killed on drop.
struct Server {
    _rivulet: Option<Serve>,
    _rqbit: Option<Proc>,
    /// The file's stream URL.
    url: String,
}

fn rqbit_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("RQBIT") {
        return p.into();
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cargo = home.join(".cargo/bin/rqbit");
    if cargo.exists() {
        cargo
    } else {
        "rqbit".into()
    }
}

struct Bench {
    work: WorkDir,
    fixture: &'static Fixture,
    torrent: PathBuf,
    n: usize,
    /// When the next timed add may be sent (see [`Bench::seeder_done`]).
    next_add: Option<Instant>,
}

impl Bench {
    /// Marks the end of a transfer from the seeder: the next timed add waits `pause` from now.
    fn seeder_done(&mut self, pause: Duration) {
        self.next_add = Some(Instant::now() + pause);
    }

    /// Waits until the pause since the seeder's last transfer is over, so that every timed add
    /// meets the seeder's tick at the same phase and its limiter in the same state, whatever the
    /// client did before.
    fn after_seeder_pause(&self) {
        if let Some(at) = self.next_add {
            let now = Instant::now();
            if now > at {
                println!("(the add comes {:?} late)", now - at);
            }
            std::thread::sleep(at.saturating_duration_since(now));
        }
    }

    /// Starts `client` with an empty data directory, waits until its API answers and the
    /// seeder's pause is over, then adds the torrent; returns the server and the instant the
    /// add request was sent.
    fn start(&mut self, client: Client) -> (Server, Instant) {
        self.n += 1;
        let tag = format!("{}-{}", client.name(), self.n);
        let torrent = std::fs::read(&self.torrent).expect("read .torrent");
        match client {
            Client::Rivulet => {
                let serve = Serve::start(&self.work, &tag, &[]);
                self.after_seeder_pause();
                let t0 = Instant::now();
                let a = serve.post("/api/torrents", &torrent);
                assert_eq!(a.status, 201, "rivulet add: {}", a.body);
                let url = serve.url(a.json()["files"][0]["stream_url"].as_str().expect("url"));
                let s = Server {
                    _rivulet: Some(serve),
                    _rqbit: None,
                    url,
                };
                (s, t0)
            }
            Client::Rqbit => {
                let http = free_addr(LOCALHOST);
                let out = self.work.subdir(&format!("{tag}-data"));
                let mut cmd = Command::new(rqbit_binary());
                cmd.arg("--disable-dht")
                    .arg("--disable-dht-persistence")
                    .arg("--disable-upnp-port-forward")
                    .arg(format!("--http-api-listen-addr={http}"))
                    .arg(format!("--listen-port={}", free_port(LOCALHOST)))
                    .arg(format!("--listen-ip={LOCALHOST}"))
                    .args(["server", "start", "--disable-persistence"])
                    .arg(&out)
                    .env("RQBIT_LOG_LEVEL_CONSOLE", "warn");
                let mut proc = Proc::spawn(&tag, cmd, &self.work.join(&format!("{tag}.log")));
                let base = format!("http://{http}");
                let probe = agent();
                wait_for(Duration::from_secs(30), "rqbit answers", || {
                    proc.assert_running("rqbit starting");
                    probe.get(&format!("{base}/torrents")).call().is_ok()
                });
                self.after_seeder_pause();
                let t0 = Instant::now();
                let mut r = probe
                    .post(&format!("{base}/torrents?overwrite=true"))
                    .send(&torrent[..])
                    .expect("rqbit add");
                let body = r.body_mut().read_to_string().expect("rqbit add body");
                assert!(r.status().is_success(), "rqbit add: {body}");
                let v: serde_json::Value = serde_json::from_str(&body).expect("rqbit JSON");
                let id = v["id"].as_u64().expect("rqbit torrent id");
                let url = format!("{base}/torrents/{id}/stream/0");
                let s = Server {
                    _rivulet: None,
                    _rqbit: Some(proc),
                    url,
                };
                (s, t0)
            }
        }
    }
}

/// GETs `len` bytes at `offset` of `url` with a Range header; the bytes read.
fn get_range(url: &str, offset: u64, len: u64) -> Result<Vec<u8>, String> {
    let mut r = agent()
        .get(url)
        .header("Range", format!("bytes={offset}-{}", offset + len - 1))
        .config()
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .call()
        .map_err(|e| e.to_string())?;
    if r.status().as_u16() != 206 {
        return Err(format!("status {}", r.status()));
    }
    let mut buf = vec![0u8; len as usize];
    r.body_mut()
        .as_reader()
        .read_exact(&mut buf)
        .map_err(|e| e.to_string())?;
    Ok(buf)
}

/// GETs the whole of `url`; bytes read and the time taken.
fn get_all(url: &str) -> Result<(u64, Duration), String> {
    let t = Instant::now();
    let mut r = agent()
        .get(url)
        .config()
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .call()
        .map_err(|e| e.to_string())?;
    let mut reader = r.body_mut().as_reader();
    let mut buf = vec![0u8; MIB as usize];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    Ok((total, t.elapsed()))
}

fn expect_bytes(fixture: &Fixture, offset: u64, got: &[u8]) -> &'static str {
    let mut want = vec![0u8; got.len()];
    fixture.read_at(offset, &mut want).expect("fixture bytes");
    if got == want { "OK" } else { "WRONG BYTES" }
}

#[derive(Default)]
struct Figures {
    first: Vec<f64>,
    seek: Vec<f64>,
    rate: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One run of `client`: figures A, C and B added to `fig`.
fn run_client(b: &mut Bench, client: Client, run: usize, fig: &mut Figures) {
    let name = client.name();
    let size = b.fixture.total_length();
    // A: add -> first 64 KiB.
    let (server, t0) = b.start(client);
    let first = get_range(&server.url, 0, 64 << 10);
    b.seeder_done(SEEDER_PAUSE);
    match first {
        Ok(got) => {
            let t = t0.elapsed().as_secs_f64();
            fig.first.push(t);
            let ok = expect_bytes(b.fixture, 0, &got);
            println!("{name} run {run} A: first 64 KiB {t:.3}s {ok}");
        }
        Err(e) => println!("{name} run {run} A: FAILED {e}"),
    }
    // C: the whole file once (fetching it), then COMPLETE_GETS times: complete, so only
    // HTTP is timed. One GET of 64 MiB is ~60 ms, within a scheduler hiccup of this machine.
    if let Err(e) = get_all(&server.url) {
        println!("{name} run {run} C: FAILED fetching {e}");
    }
    b.seeder_done(SEEDER_IDLE);
    for get in 1..=COMPLETE_GETS {
        match get_all(&server.url) {
            Ok((n, t)) if n == size => {
                let rate = n as f64 / t.as_secs_f64();
                fig.rate.push(rate);
                println!(
                    "{name} run {run} C{get}: completed file {:.0} MB/s",
                    rate / 1e6
                );
            }
            Ok((n, _)) => println!("{name} run {run} C{get}: FAILED {n} of {size} bytes"),
            Err(e) => println!("{name} run {run} C{get}: FAILED {e}"),
        }
    }
    drop(server);

    // B: add -> 1 MiB at 60 % on a fresh server.
    let (server, t0) = b.start(client);
    let offset = size * 6 / 10;
    let seek = get_range(&server.url, offset, MIB);
    b.seeder_done(SEEDER_PAUSE);
    match seek {
        Ok(got) => {
            let t = t0.elapsed().as_secs_f64();
            fig.seek.push(t);
            let ok = expect_bytes(b.fixture, offset, &got);
            println!("{name} run {run} B: 1 MiB at 60 % {t:.3}s {ok}");
        }
        Err(e) => println!("{name} run {run} B: FAILED {e}"),
    }
    drop(server);
}

fn main() {
    assert_isolated_network();
    let runs = ["RIVULET_BENCH_RUNS", "BENCH_RUNS"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse().ok())
        .unwrap_or(3);
    let fixture = Fixture::single();
    let work = WorkDir::new("bench-http-vs-rqbit");
    let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
    let seed_torrent = fixture.torrent(&tracker.http_url(), "seed", work.path());
    let libtorrent = std::env::var("BENCH_SEEDER").is_ok_and(|s| s == "libtorrent");
    let (_aria2, _libtorrent, seeder_addr, seeder_name) = if libtorrent {
        let node = LibtorrentNode::start_peer(
            work.path(),
            own_loopback(),
            SwarmPeer {
                upload_limit: SEEDER_RATE as u32,
                tick_ms: LIBTORRENT_TICK_MS,
                ..SwarmPeer::seeder(&seed_torrent, &fixture.root)
            },
        );
        let addr = node.addr;
        tracker.wait_lists(&fixture.meta.info_hash, addr, Duration::from_secs(60));
        (None, Some(node), addr, "libtorrent")
    } else {
        let seeder = Aria2Seeder::start(
            work.path(),
            fixture,
            &seed_torrent,
            &tracker,
            SeederOptions::limited(SEEDER_RATE),
        );
        let addr = seeder.addr;
        (Some(seeder), None, addr, "aria2")
    };
    let torrent = fixture.torrent(&tracker.http_url(), "http", work.path());
    println!(
        "# {} ({} bytes, {} KiB pieces), {seeder_name} seeder {seeder_addr} at {} MB/s, {runs} runs, fresh server each",
        fixture.id,
        fixture.total_length(),
        fixture.meta.piece_length >> 10,
        SEEDER_RATE / 1_000_000
    );
    let mut bench = Bench {
        work,
        fixture,
        torrent,
        n: 0,
        next_add: None,
    };
    // aria2's upload limiter takes its rate over the samples of the last 10 s: with none yet,
    // the first 16 KiB block it sends counts as ~16 MB/s, over the limit, and the rest waits
    // for its next 1 s tick (its log: unchoke within 1 ms, the second block 1.0 s later). The
    // first client of run 1 paid that second (2.0 s where 1.0 s was usual), so a fetch nobody
    // times goes first; each run then keeps the seeder busy for seconds.
    let (warm, _) = bench.start(Client::Rivulet);
    if let Err(e) = get_range(&warm.url, 0, 64 << 10) {
        println!("warm-up: FAILED {e}");
    }
    bench.seeder_done(SEEDER_PAUSE);
    drop(warm);
    // The clients take turns, the first of each run alternating: the machine's noise falls on
    // both alike.
    let (mut r, mut q) = (Figures::default(), Figures::default());
    for run in 1..=runs {
        if run % 2 == 1 {
            run_client(&mut bench, Client::Rivulet, run, &mut r);
            run_client(&mut bench, Client::Rqbit, run, &mut q);
        } else {
            run_client(&mut bench, Client::Rqbit, run, &mut q);
            run_client(&mut bench, Client::Rivulet, run, &mut r);
        }
    }

    println!("\n# medians (ratio rivulet/rqbit: below 1 is better for times, above 1 for rate)");
    println!("| figure | rivulet | rqbit | rivulet/rqbit |");
    println!("|---|---|---|---|");
    let row = |what: &str, unit: &str, scale: f64, a: &[f64], b: &[f64]| {
        println!(
            "| {what} | {:.3} {unit} | {:.3} {unit} | {:.2} |",
            median(a) / scale,
            median(b) / scale,
            median(a) / median(b)
        );
    };
    row("add -> first 64 KiB (fresh)", "s", 1.0, &r.first, &q.first);
    row("add -> 1 MiB at 60 % (fresh)", "s", 1.0, &r.seek, &q.seek);
    row("completed file over HTTP", "MB/s", 1e6, &r.rate, &q.rate);
}
