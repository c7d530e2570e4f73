//! Streaming through a mount (issue 13, scenarios 2 and 3): rivulet mount and btfs, one after
//! the other, on the same proxied swarm, each figure on a fresh mount (fresh data and state):
//!   first  launch -> first 64 KiB read back (also counted from the first connection to a
//!          seeder's proxy, the part the swarm's round trips and rates decide);
//!   at 60  payload listed -> 1 MiB read at 60 % of the file;
//!   play   a paced reader, a player without a buffer reading `read_kib` at a time at the
//!          scenario's bitrate for `play_s` from the start, then seeking to `seek_percent` and
//!          playing `play_s` again on the same mount. A read that leaves the reader more than
//!          100 ms behind its schedule is a stall: it is recorded and the schedule restarts from
//!          that moment (a player rebuffering); a shorter lag is caught up later.
//!
//! Every byte read is compared with the fixture.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rivulet_tests::fixture::Fixture;
use rivulet_tests::workdir::WorkDir;
use serde::Deserialize;

use crate::mount_client::{Client, READ_LIMIT, Running, median, timed_read};
use crate::proxy::{Proxy, RunStats};

/// A lag behind the schedule longer than this is a stall (the threshold).
const STALL: Duration = Duration::from_millis(100);

/// The `[stream]` table of a scenario file.
#[derive(Clone, Debug, Deserialize)]
pub struct StreamSpec {
    /// The video's bitrate, Mbit/s (10^6 bits).
    pub bitrate_mbit: f64,
    /// Seconds of playback from the start, and again after the seek.
    pub play_s: f64,
    /// Where the seek lands, in % of the file.
    pub seek_percent: u64,
    /// Size of each of the player's reads, KiB.
    pub read_kib: usize,
}

impl StreamSpec {
    fn bytes_per_sec(&self) -> f64 {
        self.bitrate_mbit * 1e6 / 8.0
    }
}

/// What the streaming part of a scenario works with.
pub struct Swarm<'a> {
    pub work: &'a WorkDir,
    pub fixture: &'static Fixture,
    pub torrent: &'a Path,
    pub proxies: &'a [Proxy],
    pub stats: &'a RunStats,
}

impl Swarm<'_> {
    /// A fresh mount of `client` with the proxies and counters back to an idle swarm.
    fn mount(&self, client: Client, tag: &str) -> Running {
        self.proxies.iter().for_each(Proxy::reset);
        self.stats.reset();
        Running::start(client, self.work, tag, self.torrent.as_os_str())
    }
}

/// One playback segment.
#[derive(Default)]
pub struct Play {
    /// Its first read (start-up or seek), not counted as a stall.
    pub first: f64,
    /// Every lag over 100 ms, seconds.
    pub stalls: Vec<f64>,
    /// Bytes read.
    pub bytes: u64,
}

impl Play {
    pub fn stall_total(&self) -> f64 {
        self.stalls.iter().fold(0.0, |a, s| a + s)
    }
}

/// One client's run of one streaming scenario (seconds; NaN where the step failed).
pub struct StreamRun {
    pub client: Client,
    pub first_from_launch: f64,
    pub first_from_connect: f64,
    pub at_60: f64,
    pub start: Option<Play>,
    pub seek: Option<Play>,
}

pub fn run(sw: &Swarm, spec: &StreamSpec, client: Client, n: usize) -> StreamRun {
    let name = client.name();
    let rel = &sw.fixture.files[0].rel;
    let size = sw.fixture.total_length();
    let mut out = StreamRun {
        client,
        first_from_launch: f64::NAN,
        first_from_connect: f64::NAN,
        at_60: f64::NAN,
        start: None,
        seek: None,
    };

    let t0 = Instant::now();
    let mut m = sw.mount(client, &format!("{name}-{n}-first"));
    let path = m.wait_listed(rel);
    match timed_read(&path, 0, 64 << 10) {
        Ok((_, got)) if same(sw.fixture, 0, &got) => {
            let done = Instant::now();
            out.first_from_launch = (done - t0).as_secs_f64();
            out.first_from_connect = sw.stats.first_connect().map_or(f64::NAN, |c| {
                done.saturating_duration_since(c).as_secs_f64()
            });
        }
        Ok(_) => eprintln!("{name}: first 64 KiB: WRONG BYTES"),
        Err(e) => eprintln!("{name}: first 64 KiB: FAILED {e}"),
    }
    drop(m);

    let mut m = sw.mount(client, &format!("{name}-{n}-at60"));
    let path = m.wait_listed(rel);
    let offset = size * 6 / 10;
    match timed_read(&path, offset, 1 << 20) {
        Ok((t, got)) if same(sw.fixture, offset, &got) => out.at_60 = t.as_secs_f64(),
        Ok(_) => eprintln!("{name}: 1 MiB at 60 %: WRONG BYTES"),
        Err(e) => eprintln!("{name}: 1 MiB at 60 %: FAILED {e}"),
    }
    drop(m);

    let mut m = sw.mount(client, &format!("{name}-{n}-play"));
    let path = m.wait_listed(rel);
    let seek_to = size * spec.seek_percent / 100;
    let (tx, rx) = mpsc::channel();
    let (fixture, spec2) = (sw.fixture, spec.clone());
    // The player runs in a thread of its own: a read that never returns (btfs has no read
    // timeout) must not hang the benchmark; the mount's unmount ends it.
    std::thread::spawn(move || {
        let r = File::open(&path).map_err(|e| e.to_string()).and_then(|f| {
            let a = play(&f, fixture, 0, &spec2)?;
            let _ = tx.send(Ok(Some(a)));
            play(&f, fixture, seek_to, &spec2)
        });
        let _ = tx.send(r.map(Some));
    });
    let limit = Duration::from_secs_f64(spec.play_s * 2.0) + READ_LIMIT;
    let end = Instant::now() + limit;
    for slot in [&mut out.start, &mut out.seek] {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(Ok(p)) => *slot = p,
            Ok(Err(e)) => {
                eprintln!("{name}: playback FAILED: {e}");
                break;
            }
            Err(_) => {
                eprintln!("{name}: playback did not end within {limit:?}");
                break;
            }
        }
    }
    drop(m);
    eprintln!("{}", line(&out));
    out
}

/// Plays `spec.play_s` seconds from `from` (or to the end of the file).
fn play(f: &File, fixture: &Fixture, from: u64, spec: &StreamSpec) -> Result<Play, String> {
    let size = fixture.total_length();
    let chunk = (spec.read_kib as u64) << 10;
    let rate = spec.bytes_per_sec();
    let mut buf = vec![0u8; chunk as usize];
    let read = |off: u64, buf: &mut Vec<u8>| -> Result<u64, String> {
        let n = chunk.min(size - off);
        buf.resize(n as usize, 0);
        f.read_exact_at(buf, off)
            .map_err(|e| format!("read at {off}: {e}"))?;
        if !same(fixture, off, buf) {
            return Err(format!("wrong bytes at {off}"));
        }
        Ok(n)
    };
    let mut p = Play::default();
    let t = Instant::now();
    let mut off = from;
    off += read(off, &mut buf)?;
    p.first = t.elapsed().as_secs_f64();
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(spec.play_s);
    let mut due = start + Duration::from_secs_f64((off - from) as f64 / rate);
    while due < stop && off < size {
        sleep_until(due);
        let n = read(off, &mut buf)?;
        let now = Instant::now();
        let late = now.saturating_duration_since(due);
        if late > STALL {
            p.stalls.push(late.as_secs_f64());
            due = now;
        }
        due += Duration::from_secs_f64(n as f64 / rate);
        off += n;
    }
    p.bytes = off - from;
    Ok(p)
}

fn same(fixture: &Fixture, offset: u64, got: &[u8]) -> bool {
    let mut want = vec![0u8; got.len()];
    fixture.read_at(offset, &mut want).is_ok() && want == got
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

impl StreamRun {
    fn failed(&self) -> bool {
        [self.first_from_launch, self.at_60]
            .iter()
            .any(|v| v.is_nan())
            || self.start.is_none()
            || self.seek.is_none()
    }
}

/// One run's figures on one line (progress on stderr).
fn line(r: &StreamRun) -> String {
    let play = |p: &Option<Play>| {
        p.as_ref().map_or("failed".into(), |p| {
            format!(
                "first read {:.3}s, {} stalls {:.2}s (longest {:.2}s; {:.1} MB read)",
                p.first,
                p.stalls.len(),
                p.stall_total(),
                p.stalls.iter().copied().fold(0.0, f64::max),
                p.bytes as f64 / 1e6
            )
        })
    };
    format!(
        "{}: first 64 KiB {:.3}s from launch ({:.3}s from first connection); 1 MiB at 60 % {:.3}s; \
         play from start: {}; after seek: {}",
        r.client.name(),
        r.first_from_launch,
        r.first_from_connect,
        r.at_60,
        play(&r.start),
        play(&r.seek)
    )
}

fn segment(r: &StreamRun, after_seek: bool) -> &Option<Play> {
    if after_seek { &r.seek } else { &r.start }
}

/// The side-by-side table of one scenario: medians over the runs of each client.
pub fn table(scenario: &str, spec: &StreamSpec, runs: &[StreamRun]) -> String {
    let of = |c: Client| runs.iter().filter(move |r| r.client == c);
    // A failed step counts in its own row, not in the medians.
    let med = |c: Client, f: &dyn Fn(&StreamRun) -> f64| {
        median(&of(c).map(f).filter(|v| !v.is_nan()).collect::<Vec<_>>())
    };
    type Figure<'a> = (String, Box<dyn Fn(&StreamRun) -> f64 + 'a>);
    let mut figures: Vec<Figure> = vec![
        (
            "first 64 KiB, from launch (s)".into(),
            Box::new(|r: &StreamRun| r.first_from_launch),
        ),
        (
            "first 64 KiB, from first connection (s)".into(),
            Box::new(|r: &StreamRun| r.first_from_connect),
        ),
        (
            "1 MiB at 60 %, from listed (s)".into(),
            Box::new(|r: &StreamRun| r.at_60),
        ),
    ];
    for (seek, what) in [
        (false, "play from start".to_string()),
        (true, format!("play after seek to {} %", spec.seek_percent)),
    ] {
        figures.push((
            format!("{what}: first read (s)"),
            Box::new(move |r: &StreamRun| segment(r, seek).as_ref().map_or(f64::NAN, |p| p.first)),
        ));
        figures.push((
            format!("{what}: stalls > 100 ms"),
            Box::new(move |r: &StreamRun| {
                segment(r, seek)
                    .as_ref()
                    .map_or(f64::NAN, |p| p.stalls.len() as f64)
            }),
        ));
        figures.push((
            format!("{what}: total stall (s)"),
            Box::new(move |r: &StreamRun| {
                segment(r, seek)
                    .as_ref()
                    .map_or(f64::NAN, Play::stall_total)
            }),
        ));
        figures.push((
            format!("{what}: longest stall (s)"),
            Box::new(move |r: &StreamRun| {
                segment(r, seek)
                    .as_ref()
                    .map_or(f64::NAN, |p| p.stalls.iter().copied().fold(0.0, f64::max))
            }),
        ));
    }
    figures.push((
        "runs with a failed step".into(),
        Box::new(|r: &StreamRun| f64::from(u8::from(r.failed()))),
    ));
    let n = of(Client::Rivulet).count();
    let mut t = format!(
        "**{scenario}** ({} Mbit/s, reads of {} KiB, {} s played from the start and {} s after \
         the seek; medians of {n} run(s), failed steps left out)\n\n\
         | figure | rivulet | btfs | rivulet / btfs |\n|---|---:|---:|---:|\n",
        spec.bitrate_mbit, spec.read_kib, spec.play_s, spec.play_s
    );
    for (label, f) in &figures {
        let (r, b) = if label.starts_with("runs with") {
            let count = |c: Client| of(c).map(f.as_ref()).sum::<f64>();
            (count(Client::Rivulet), count(Client::Btfs))
        } else {
            (
                med(Client::Rivulet, f.as_ref()),
                med(Client::Btfs, f.as_ref()),
            )
        };
        let ratio = if b > 0.0 && !label.starts_with("runs with") {
            format!("{:.2}", r / b)
        } else {
            "-".into()
        };
        t.push_str(&format!("| {label} | {r:.3} | {b:.3} | {ratio} |\n"));
    }
    t
}
