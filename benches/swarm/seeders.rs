//! Starts a scenario's seeders, unthrottled and each on a loopback address of its own (rate and
//! delay are the proxies' job): aria2 processes without a hash check, one libtorrent process
//! holding a session per seeder in seed mode, and `rivulet seed` processes. Seeders announce to
//! nobody: the leechers learn the proxies' addresses instead.
//!
//! Each seeder then serves one block to a throwaway peer before any leecher runs: a fresh
//! libtorrent seeder answered its first peer's handshake only after 0.39 s and its have-all
//! after 0.89 s, every later peer at once (2026-12-05 events), which charged the first leecher
//! of a run, and only it, with up to 1.5 s.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rivulet_tests::aria2::base_command;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{free_addr, own_loopback};
use rivulet_tests::process::{Proc, wait_for};
use rivulet_tests::raw_peer::RawPeer;
use rivulet_tests::rivulet::{Running, seed_with};
use rivulet_tests::wire;
use serde_json::json;

use crate::scenario::{SeederClient, SeederSpec};

/// Debian's interpreter: the libtorrent bindings are installed for it only.
pub const PYTHON: &str = "/usr/bin/python3";
const READY: Duration = Duration::from_secs(120);
/// One warm-up step (aria2 unchokes on its ~1 s tick).
const WARM_STEP: Duration = Duration::from_secs(15);

/// The running seeders; stopped on drop.
pub struct Seeders {
    /// Listening addresses, in the scenario's order.
    pub addrs: Vec<SocketAddr>,
    _procs: Vec<Proc>,
    _rivulets: Vec<Running>,
}

pub fn start(dir: &Path, fixture: &Fixture, torrent: &Path, specs: &[SeederSpec]) -> Seeders {
    let addrs: Vec<SocketAddr> = specs.iter().map(|_| free_addr(own_loopback())).collect();
    let mut procs = Vec::new();
    let mut rivulets = Vec::new();
    let of = |c: SeederClient| specs.iter().zip(&addrs).filter(move |(s, _)| s.client == c);
    for (_, &addr) in of(SeederClient::Aria2) {
        procs.push(aria2(dir, fixture, torrent, addr));
    }
    let lt: Vec<SocketAddr> = of(SeederClient::Libtorrent).map(|(_, a)| *a).collect();
    if !lt.is_empty() {
        procs.push(libtorrent(dir, fixture, torrent, &lt));
    }
    for (i, (_, &addr)) in of(SeederClient::Rivulet).enumerate() {
        let sub = dir.join(format!("rivulet-seed-{i}"));
        std::fs::create_dir_all(&sub).expect("mkdir seeder dir");
        let state = sub.join("state");
        // A copy each: rivulet locks the files it serves, even against another rivulet reading
        // them through a hard link.
        let data = sub.join("data");
        fixture.copy_payload(&data);
        let mut seed = seed_with(
            &sub,
            torrent,
            &data,
            addr,
            &sub.join("events.jsonl"),
            &[
                "--no-dht",
                "--state-dir",
                state.to_str().expect("UTF-8 path"),
            ],
        );
        seed.wait_events(READY, "rivulet seeder to listen", |e| e.has("listening"));
        rivulets.push(seed);
    }
    for &addr in &addrs {
        wait_for(READY, &format!("seeder {addr} to listen"), || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        });
    }
    for &addr in &addrs {
        warm_up(addr, &fixture.meta.info_hash)
            .unwrap_or_else(|e| panic!("seeder {addr} did not serve a warm-up block: {e}"));
    }
    Seeders {
        addrs,
        _procs: procs,
        _rivulets: rivulets,
    }
}

/// Fetches the first block of piece 0 from the seeder at `addr`, straight (not through a proxy).
fn warm_up(addr: SocketAddr, info_hash: &[u8; 20]) -> std::io::Result<()> {
    let mut peer = RawPeer::connect(addr)?;
    peer.handshake(info_hash, WARM_STEP)?;
    peer.send(&wire::message(wire::INTERESTED, &[]))?;
    peer.wait_message(wire::UNCHOKE, WARM_STEP)?;
    peer.send(&wire::request(0, 0, 16 * 1024))?;
    peer.wait_message(wire::PIECE, WARM_STEP).map(drop)
}

fn aria2(dir: &Path, fixture: &Fixture, torrent: &Path, addr: SocketAddr) -> Proc {
    let SocketAddr::V4(v4) = addr else {
        unreachable!("own_loopback is IPv4")
    };
    let log = dir.join(format!("aria2-seed-{addr}.log"));
    let mut cmd = base_command(*v4.ip(), addr.port(), &log);
    cmd.arg(format!("--dir={}", fixture.root.display()))
        .args([
            "--enable-dht=false",
            "--enable-rpc=false",
            "--check-integrity=false",
            "--bt-seed-unverified=true",
            "--seed-ratio=0.0",
            "--bt-max-peers=0",
            "--log-level=notice",
        ])
        .arg(torrent);
    Proc::spawn(
        &format!("aria2 seeder {addr}"),
        cmd,
        &dir.join(format!("aria2-seed-{addr}.out")),
    )
}

fn libtorrent(dir: &Path, fixture: &Fixture, torrent: &Path, addrs: &[SocketAddr]) -> Proc {
    let listen: Vec<(String, u16)> = addrs
        .iter()
        .map(|a| (a.ip().to_string(), a.port()))
        .collect();
    let cfg = json!({
        "torrent": torrent.display().to_string(),
        "data": fixture.root.display().to_string(),
        "listen": listen,
    });
    let mut cmd = Command::new(PYTHON);
    cmd.arg("-c")
        .arg(include_str!("lt_peer.py"))
        .arg("seed")
        .arg(cfg.to_string());
    let out = dir.join("libtorrent-seeders.out");
    let mut proc = Proc::spawn("libtorrent seeders", cmd, &out);
    wait_for(READY, "libtorrent seeders to seed", || {
        assert!(
            proc.is_running(),
            "libtorrent seeders exited:\n{}",
            proc.log_tail(3000)
        );
        std::fs::read_to_string(&out).is_ok_and(|s| s.contains("\"ready\""))
    });
    proc
}
