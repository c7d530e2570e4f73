//! aria2 as a real peer: a seeder of a fixture (ready once its JSON-RPC reports it seeding and
//! the tracker lists it) and a one-shot leecher (done when it exits after the download).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::fixture::Fixture;
use crate::ports::{LOCALHOST, SEEDER_IP, free_port};
use crate::process::{Proc, poll};
use crate::tracker::Tracker;

/// Options every aria2 of the harness shares: loopback only, no discovery besides the tracker,
/// plaintext handshakes accepted, no session files.
pub fn base_command(bind: Ipv4Addr, port: u16, log: &Path) -> Command {
    let mut cmd = Command::new("aria2c");
    cmd.arg(format!("--listen-port={port}"))
        .arg(format!("--interface={bind}"))
        .args([
            "--disable-ipv6=true",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--bt-require-crypto=false",
            "--bt-min-crypto-level=plain",
            "--file-allocation=none",
            "--bt-save-metadata=false",
            "--force-save=false",
            "--console-log-level=warn",
            "--summary-interval=0",
        ])
        // aria2 ends itself if the test process dies without dropping it.
        .arg(format!("--stop-with-process={}", std::process::id()))
        .arg(format!("--log={}", log.display()));
    cmd
}

#[derive(Clone, Debug, Default)]
pub struct SeederOptions {
    /// Upload limit in bytes per second (0 = none): slows the honest peer down so that a test
    /// can watch a download in progress, or so that a faster fake peer gets requests.
    pub upload_limit: u64,
    /// Log at debug level, which names the address of every peer that connects
    /// ([`Aria2Seeder::incoming_peers`]).
    pub log_peers: bool,
}

impl SeederOptions {
    /// A seeder that uploads at most `rate` bytes per second.
    pub fn limited(rate: u64) -> SeederOptions {
        SeederOptions {
            upload_limit: rate,
            ..SeederOptions::default()
        }
    }
}

pub struct Aria2Seeder {
    proc: Proc,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Aria2Seeder {
    /// Seeds `fixture` through `torrent` from the fixture's cached data on 127.0.0.2 and waits
    /// until it is seeding and listed by `tracker`.
    pub fn start(
        dir: &Path,
        fixture: &Fixture,
        torrent: &Path,
        tracker: &Tracker,
        opts: SeederOptions,
    ) -> Aria2Seeder {
        let port = free_port(SEEDER_IP);
        let rpc_port = free_port(LOCALHOST);
        let addr = SocketAddr::from((SEEDER_IP, port));
        let log = dir.join(format!("aria2-seed-{port}.log"));
        let mut cmd = base_command(SEEDER_IP, port, &log);
        cmd.arg("--enable-rpc=true")
            .arg(format!("--rpc-listen-port={rpc_port}"))
            .arg("--rpc-listen-all=false")
            .arg(format!("--dir={}", fixture.root.display()))
            .args([
                "--enable-dht=false",
                "--check-integrity=true",
                "--bt-hash-check-seed=true",
                "--bt-seed-unverified=false",
                "--seed-ratio=0.0",
                "--allow-overwrite=false",
                "--auto-file-renaming=false",
                "--bt-max-peers=0",
            ])
            .arg(if opts.log_peers {
                "--log-level=debug"
            } else {
                "--log-level=notice"
            })
            .arg(format!("--max-upload-limit={}", opts.upload_limit))
            .arg(torrent);
        let mut proc = Proc::spawn(
            "aria2 seeder",
            cmd,
            &dir.join(format!("aria2-seed-{port}.out")),
        );
        let hash = fixture.info_hash_hex();
        let rpc = format!("http://{LOCALHOST}:{rpc_port}/jsonrpc");
        let ready = poll(Duration::from_secs(60), || {
            if let Some(st) = proc.try_status() {
                return Ok(Err(format!("aria2 exited ({st})")));
            }
            match seeding(&rpc, &hash) {
                Ok(true) => Ok(Ok(())),
                Ok(false) => Err("not seeding yet".to_string()),
                Err(e) => Err(format!("JSON-RPC: {e}")),
            }
        })
        .and_then(|r| r);
        if let Err(e) = ready {
            panic!(
                "aria2 seeder of {} did not start seeding: {e}\nlog tail:\n{}",
                fixture.id,
                proc.log_tail(3000)
            );
        }
        tracker.wait_lists(&fixture.meta.info_hash, addr, Duration::from_secs(20));
        Aria2Seeder { proc, addr, log }
    }

    /// The addresses peers connected from, as its log names them (needs
    /// [`SeederOptions::log_peers`]); the JSON-RPC listener logs its connections alike.
    pub fn incoming_peers(&self) -> Vec<SocketAddr> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let (_, rest) = l
                    .split_once("[PeerListenCommand")?
                    .1
                    .split_once("Accepted the connection from ")?;
                rest.trim_end_matches('.').parse().ok()
            })
            .collect()
    }

    pub fn assert_running(&mut self) {
        self.proc.assert_running("seeding");
    }
}

fn seeding(rpc: &str, hash: &str) -> anyhow::Result<bool> {
    let req = json!({
        "jsonrpc": "2.0", "id": "h", "method": "aria2.tellActive",
        "params": [["infoHash", "seeder", "completedLength", "totalLength"]]
    });
    let reply: Value = ureq::post(rpc).send_json(&req)?.body_mut().read_json()?;
    let active = reply["result"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("no result in {reply}"))?;
    Ok(active.iter().any(|t| {
        t["infoHash"] == hash && t["seeder"] == "true" && t["completedLength"] == t["totalLength"]
    }))
}

/// A one-shot aria2 download into `out`.
pub struct Aria2Leecher {
    proc: Proc,
    log: PathBuf,
    pub out: PathBuf,
}

impl Aria2Leecher {
    /// Starts downloading `torrent` into `out`, bound to `bind`.
    pub fn start(dir: &Path, torrent: &Path, out: &Path, bind: Ipv4Addr) -> Aria2Leecher {
        let udp = crate::torrent::TorrentInfo::read(torrent)
            .announce
            .is_some_and(|a| a.starts_with("udp://"));
        Self::spawn(dir, torrent.as_os_str(), udp, out, bind, None)
    }

    /// [`Aria2Leecher::start`] finding its peers through the DHT, joined through `entry`.
    pub fn start_dht(
        dir: &Path,
        torrent: &Path,
        out: &Path,
        bind: Ipv4Addr,
        entry: SocketAddr,
    ) -> Aria2Leecher {
        Self::spawn(dir, torrent.as_os_str(), false, out, bind, Some(entry))
    }

    /// Starts downloading the magnet link `link` (its metadata fetched from the swarm first)
    /// into `out`, bound to `bind`; its trackers must be HTTP.
    pub fn start_magnet(dir: &Path, link: &str, out: &Path, bind: Ipv4Addr) -> Aria2Leecher {
        Self::spawn(dir, link.as_ref(), false, out, bind, None)
    }

    fn spawn(
        dir: &Path,
        target: &std::ffi::OsStr,
        udp: bool,
        out: &Path,
        bind: Ipv4Addr,
        dht_entry: Option<SocketAddr>,
    ) -> Aria2Leecher {
        let port = free_port(bind);
        let log = dir.join(format!("aria2-leech-{port}.log"));
        let mut cmd = base_command(bind, port, &log);
        if let Some(entry) = dht_entry {
            let dht_port = free_port(bind);
            cmd.arg("--enable-dht=true")
                .arg(format!("--dht-listen-port={dht_port}"))
                .arg(format!("--dht-entry-point={entry}"))
                .arg(format!("--dht-file-path={}", dir.join("dht.dat").display()));
        } else if udp {
            // aria2 speaks UDP trackers only through its DHT socket ("udp is not supported yet"
            // otherwise); without entry points and on loopback that DHT stays local.
            let dht_port = free_port(bind);
            cmd.arg("--enable-dht=true")
                .arg(format!("--dht-listen-port={dht_port}"))
                .arg(format!("--dht-file-path={}", dir.join("dht.dat").display()));
        } else {
            cmd.arg("--enable-dht=false");
        }
        cmd.arg("--enable-rpc=false")
            .arg(format!("--dir={}", out.display()))
            .args([
                "--seed-time=0",
                "--check-integrity=false",
                "--bt-hash-check-seed=false",
                "--auto-save-interval=0",
                "--log-level=info",
            ])
            .arg(target);
        let proc = Proc::spawn(
            "aria2 leecher",
            cmd,
            &dir.join(format!("aria2-leech-{port}.out")),
        );
        Aria2Leecher {
            proc,
            log,
            out: out.to_path_buf(),
        }
    }

    /// Waits for aria2 to finish the download and exit successfully.
    pub fn wait_done(&mut self, timeout: Duration) {
        self.proc.wait_success(timeout);
    }

    /// The process, for a caller that watches it itself (a benchmark sampling its memory).
    pub fn proc_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// aria2's own log (`--log`, info level): peer handshakes, "Seeding is over".
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}
