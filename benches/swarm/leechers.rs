//! The clients under test as one-shot leechers of the proxies' swarm: rivulet (release
//! binary), aria2, libtorrent (python3-libtorrent) and rqbit if it is on PATH. Each runs to
//! its exit after the download; what it reports as wasted (duplicate, rejected or failed bytes)
//! comes back where the client tells it.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rivulet_tests::aria2::Aria2Leecher;
use rivulet_tests::events::Events;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr, free_port};
use rivulet_tests::process::Proc;
use rivulet_tests::rivulet::Download;
use serde_json::{Value, json};

use crate::seeders::PYTHON;

const BOUND: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Leecher {
    Rivulet,
    Aria2,
    Libtorrent,
    Rqbit,
}

impl Leecher {
    pub fn name(self) -> &'static str {
        match self {
            Leecher::Rivulet => "rivulet",
            Leecher::Aria2 => "aria2",
            Leecher::Libtorrent => "libtorrent",
            Leecher::Rqbit => "rqbit",
        }
    }

    /// The leechers of this machine (rqbit only if installed), or those named in `only`
    /// (comma-separated), for a quick comparison while tuning.
    pub fn available(only: Option<&str>) -> Vec<Leecher> {
        let mut all = vec![Leecher::Rivulet, Leecher::Aria2, Leecher::Libtorrent];
        if Command::new("rqbit").arg("--version").output().is_ok() {
            all.push(Leecher::Rqbit);
        }
        if let Some(only) = only {
            let names: Vec<&str> = only.split(',').map(str::trim).collect();
            all.retain(|l| names.contains(&l.name()));
        }
        all
    }

    /// Downloads `torrent` into `out`; returns when the client exited after completing.
    pub fn run(self, dir: &Path, torrent: &Path, out: &Path, fixture: &Fixture) -> Outcome {
        let launch = Instant::now();
        match self {
            Leecher::Rivulet => {
                let events = dir.join("rivulet-leech-events.jsonl");
                let mut run = Download::new(torrent, out)
                    .listen(free_addr(LOCALHOST))
                    .events(&events)
                    .state_dir(&dir.join("rivulet-state"))
                    .no_dht()
                    .spawn(dir, "rivulet-leech");
                run.wait_success(BOUND);
                let exit = Instant::now();
                // `downloaded` counts every payload byte received, kept or not.
                let received = Events::read(&events)
                    .of("complete")
                    .next()
                    .and_then(|e| e["downloaded"].as_u64());
                Outcome {
                    launch,
                    exit,
                    wasted: received.map(|r| r.saturating_sub(fixture.total_length())),
                }
            }
            Leecher::Aria2 => {
                let mut aria = Aria2Leecher::start(dir, torrent, out, LOCALHOST);
                aria.wait_done(BOUND);
                Outcome {
                    launch,
                    exit: Instant::now(),
                    wasted: None,
                }
            }
            Leecher::Libtorrent => libtorrent(dir, torrent, out, launch),
            Leecher::Rqbit => {
                let mut cmd = Command::new("rqbit");
                cmd.args([
                    "--disable-dht",
                    "--disable-dht-persistence",
                    "download",
                    "--exit-on-finish",
                    "--disable-http-api",
                ])
                .arg("--output-folder")
                .arg(out)
                .arg(torrent);
                let mut proc = Proc::spawn("rqbit", cmd, &dir.join("rqbit.out"));
                proc.wait_success(BOUND);
                Outcome {
                    launch,
                    exit: Instant::now(),
                    wasted: None,
                }
            }
        }
    }
}

/// One leecher run.
pub struct Outcome {
    pub launch: Instant,
    pub exit: Instant,
    /// Bytes received and thrown away, if the client reports it.
    pub wasted: Option<u64>,
}

fn libtorrent(dir: &Path, torrent: &Path, out: &Path, launch: Instant) -> Outcome {
    let ip = Ipv4Addr::LOCALHOST;
    let cfg = json!({
        "ip": ip.to_string(),
        "port": free_port(ip),
        "torrent": torrent.display().to_string(),
        "out": out.display().to_string(),
    });
    let mut cmd = Command::new(PYTHON);
    cmd.arg("-c")
        .arg(include_str!("lt_peer.py"))
        .arg("leech")
        .arg(cfg.to_string());
    let log = dir.join("libtorrent-leech.out");
    let mut proc = Proc::spawn("libtorrent leecher", cmd, &log);
    proc.wait_success(BOUND);
    let exit = Instant::now();
    let done: Option<Value> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .find_map(|l| serde_json::from_str(l).ok());
    let wasted = done.and_then(|d| Some(d["redundant"].as_u64()? + d["failed"].as_u64()?));
    Outcome {
        launch,
        exit,
        wasted,
    }
}
