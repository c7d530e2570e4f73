//! libtorrent (Debian's python3-libtorrent) as a real peer and DHT node: a small Python script
//! runs one libtorrent session on a loopback address of its own, optionally seeding a torrent,
//! and prints what happens as JSON lines (`listening`, `checked` once it has checked the data it
//! has, `seeding`, `dht_announce` when another node announces a peer to it, `dht_get_peers` when
//! one looks an info-hash up through it, `peers` with its connected peers and where it learnt of
//! each whenever that changes). The test waits on those lines.
//!
//! [`LibtorrentNode::start_peer`] runs one as a plain swarm member instead: no DHT, dialling
//! the peers it is given, optionally in upload mode (it asks nobody for data), which is how the
//! peer exchange tests make a peer that knows others but has nothing to give.
//!
//! libtorrent's DHT refuses loopback and same-IP nodes by default; the script turns off
//! `dht_restrict_routing_ips`, `dht_restrict_search_ips`, `dht_enforce_node_id` and
//! `dht_ignore_dark_internet` (127/8 is "dark internet" to it). A node never lists its own
//! torrents to itself, so a swarm found through the DHT needs at least two nodes: one that others
//! bootstrap from, and the seeder, which announces to it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::ports::free_port;
use crate::process::{Proc, poll};

/// Debian's interpreter: the bindings are installed for it, not for another python3 on PATH.
const PYTHON: &str = "/usr/bin/python3";

const SCRIPT: &str = r#"
import json, sys, time
import libtorrent as lt

cfg = json.loads(sys.argv[1])
def say(event, **kw):
    kw["event"] = event
    print(json.dumps(kw), flush=True)

settings = {
    "listen_interfaces": "%s:%d" % (cfg["ip"], cfg["port"]),
    "outgoing_interfaces": cfg["ip"],
    "enable_dht": cfg.get("dht", True),
    "dht_bootstrap_nodes": cfg["bootstrap"],
    "dht_restrict_routing_ips": False,
    "dht_restrict_search_ips": False,
    "dht_enforce_node_id": False,
    "dht_ignore_dark_internet": False,
    "dht_prefer_verified_node_ids": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_incoming_utp": False,
    "enable_outgoing_utp": False,
    "allow_multiple_connections_per_ip": True,
    # A peer in upload mode and a seeder stay connected: the peer exchange tests need the
    # middle peer to keep the seeder in its list.
    "close_redundant_connections": cfg.get("dht", True),
    "alert_mask": lt.alert.category_t.dht_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.error_notification,
}
# Its rate limiter hands out send quota once per tick (500 ms by default): a limited peer then
# sends in bursts that far apart, and a client's wait depends on where in the tick it asked.
if cfg.get("tick_ms"):
    settings["tick_interval"] = cfg["tick_ms"]
s = lt.session(settings)
handle = None
if cfg["torrent"]:
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(cfg["torrent"])
    atp.save_path = cfg["data"]
    if cfg.get("upload_mode"):
        atp.flags |= lt.torrent_flags.upload_mode
    handle = s.add_torrent(atp)
    if cfg.get("download_limit"):
        handle.set_download_limit(cfg["download_limit"])
    if cfg.get("upload_limit"):
        handle.set_upload_limit(cfg["upload_limit"])
    for peer in cfg.get("connect", []):
        ip, port = peer.rsplit(":", 1)
        handle.connect_peer((ip, int(port)))

SOURCES = ("tracker", "dht", "pex", "lsd", "resume_data")
def peer_list():
    out = []
    for p in handle.get_peer_info():
        if p.flags & lt.peer_info.connecting or p.flags & lt.peer_info.handshake:
            continue
        out.append({
            "addr": "%s:%d" % p.ip,
            "source": [n for n in SOURCES if p.source & getattr(lt.peer_info, n)],
            "outgoing": bool(p.flags & lt.peer_info.outgoing_connection),
        })
    return sorted(out, key=lambda p: p["addr"])

seeding = False
last_announce = 0.0
last_peers = None
while True:
    s.wait_for_alert(200)
    for a in s.pop_alerts():
        if isinstance(a, lt.listen_succeeded_alert):
            say("listening", port=a.port)
        elif isinstance(a, lt.dht_announce_alert):
            say("dht_announce", ip=str(a.ip), port=a.port, info_hash=str(a.info_hash))
        elif isinstance(a, lt.dht_get_peers_alert):
            say("dht_get_peers", info_hash=str(a.info_hash))
        elif isinstance(a, lt.dht_bootstrap_alert):
            say("dht_bootstrapped")
        elif isinstance(a, lt.torrent_checked_alert):
            say("checked")
        elif isinstance(a, (lt.listen_failed_alert, lt.torrent_error_alert)):
            say("error", message=a.message())
    if handle is not None:
        st = handle.status()
        if not seeding and st.is_seeding:
            seeding = True
            say("seeding")
        # libtorrent announces once at start (before its DHT has any node) and then every 15
        # minutes: repeat it until the test is over.
        peers = peer_list()
        if peers != last_peers:
            say("peers", peers=peers)
            last_peers = peers
        if cfg.get("dht", True) and seeding and time.time() - last_announce > 3:
            handle.force_dht_announce()
            last_announce = time.time()
"#;

/// What a node seeds: the torrent and the directory holding its data.
pub struct Seed<'a> {
    pub torrent: &'a Path,
    pub data: &'a Path,
}

/// A plain swarm member; see [`LibtorrentNode::start_peer`].
pub struct SwarmPeer<'a> {
    pub torrent: &'a Path,
    pub data: &'a Path,
    pub seeding: bool,
    pub upload_mode: bool,
    pub connect: Vec<SocketAddr>,
    /// Bytes a second it downloads at most; 0 for no limit.
    pub download_limit: u32,
    /// Bytes a second it uploads at most; 0 for no limit.
    pub upload_limit: u32,
    /// libtorrent's tick in ms (0: its default, 500). A limited peer sends in bursts one tick
    /// apart; a benchmark timing a fraction of a second wants them closer.
    pub tick_ms: u32,
}

impl<'a> SwarmPeer<'a> {
    /// A peer holding the whole of `torrent` in `data`, with no limits and no one to dial.
    pub fn seeder(torrent: &'a Path, data: &'a Path) -> Self {
        SwarmPeer {
            torrent,
            data,
            seeding: true,
            upload_mode: false,
            connect: Vec::new(),
            download_limit: 0,
            upload_limit: 0,
            tick_ms: 0,
        }
    }

    /// A peer that starts with nothing of `torrent` and downloads it into `data`.
    pub fn leecher(torrent: &'a Path, data: &'a Path) -> Self {
        SwarmPeer {
            seeding: false,
            ..SwarmPeer::seeder(torrent, data)
        }
    }
}

/// A running libtorrent session; killed on drop.
pub struct LibtorrentNode {
    proc: Proc,
    out: PathBuf,
    /// Its TCP listener and DHT (UDP) address.
    pub addr: SocketAddr,
}

impl LibtorrentNode {
    /// Starts a node on `ip` joining the DHT through `bootstrap` (none: the first node), seeding
    /// `seed` if given; returns once it listens (and seeds).
    pub fn start(
        dir: &Path,
        ip: Ipv4Addr,
        bootstrap: Option<SocketAddr>,
        seed: Option<Seed>,
    ) -> LibtorrentNode {
        let port = free_port(ip);
        let cfg = json!({
            "ip": ip.to_string(),
            "port": port,
            "bootstrap": bootstrap.map(|b| b.to_string()).unwrap_or_default(),
            "torrent": seed.as_ref().map(|s| s.torrent.display().to_string()),
            "data": seed.as_ref().map(|s| s.data.display().to_string()),
        });
        Self::spawn(dir, ip, port, cfg, seed.is_some())
    }

    /// Starts a swarm member on `ip` without the DHT, sharing `torrent` with its data in `data`
    /// (seeding, if `seeding`, once it has checked it), dialling `connect`; in upload mode it
    /// requests no data from anyone. It keeps connections libtorrent would close as redundant
    /// (seed to upload-only peer). Returns once it listens (and seeds).
    pub fn start_peer(dir: &Path, ip: Ipv4Addr, peer: SwarmPeer) -> LibtorrentNode {
        let port = free_port(ip);
        let cfg = json!({
            "ip": ip.to_string(),
            "port": port,
            "bootstrap": "",
            "dht": false,
            "torrent": peer.torrent.display().to_string(),
            "data": peer.data.display().to_string(),
            "connect": peer.connect.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "upload_mode": peer.upload_mode,
            "download_limit": peer.download_limit,
            "upload_limit": peer.upload_limit,
            "tick_ms": peer.tick_ms,
        });
        Self::spawn(dir, ip, port, cfg, peer.seeding)
    }

    fn spawn(dir: &Path, ip: Ipv4Addr, port: u16, cfg: Value, seeding: bool) -> LibtorrentNode {
        let addr = SocketAddr::from((ip, port));
        let mut cmd = Command::new(PYTHON);
        cmd.arg("-c").arg(SCRIPT).arg(cfg.to_string());
        let out = dir.join(format!("libtorrent-{ip}-{port}.out"));
        let proc = Proc::spawn(&format!("libtorrent {addr}"), cmd, &out);
        let mut node = LibtorrentNode { proc, out, addr };
        node.wait_event(Duration::from_secs(30), "libtorrent to listen", |e| {
            e["event"] == "listening"
        });
        if seeding {
            node.wait_event(Duration::from_secs(60), "libtorrent to seed", |e| {
                e["event"] == "seeding"
            });
        }
        node
    }

    /// Waits until it has checked the data it holds (a swarm member that is not a seeder).
    pub fn wait_checked(&mut self) {
        self.wait_event(
            Duration::from_secs(60),
            "libtorrent to check its data",
            |e| e["event"] == "checked",
        );
    }

    /// The JSON lines the script printed so far.
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until some printed line satisfies `cond`; panics with the output on timeout or if
    /// the script exits.
    pub fn wait_event(&mut self, timeout: Duration, what: &str, cond: impl Fn(&Value) -> bool) {
        let waited = poll(timeout, || {
            if self.events().iter().any(&cond) {
                return Ok(Ok(()));
            }
            if let Some(st) = self.proc.try_status() {
                return Ok(Err(format!("libtorrent exited ({st})")));
            }
            Err("not yet".to_string())
        })
        .and_then(|r| r);
        if let Err(e) = waited {
            panic!(
                "waiting for {what}: {e}\noutput:\n{}",
                self.proc.log_tail(3000)
            );
        }
    }

    /// Waits until a connected peer satisfies `cond` (given its `peers` entry: `addr`,
    /// `source` names, `outgoing`).
    pub fn wait_peer(&mut self, timeout: Duration, what: &str, cond: impl Fn(&Value) -> bool) {
        self.wait_event(timeout, what, |e| {
            e["event"] == "peers"
                && e["peers"]
                    .as_array()
                    .is_some_and(|peers| peers.iter().any(&cond))
        });
    }

    /// Waits until a node announced `peer` (its IP and TCP port) for `info_hash_hex` to this one.
    pub fn wait_announced(&mut self, info_hash_hex: &str, peer: SocketAddr, timeout: Duration) {
        let ip = peer.ip();
        self.wait_event(timeout, &format!("{peer} to announce itself"), |e| {
            e["event"] == "dht_announce"
                && e["info_hash"] == info_hash_hex
                && e["port"] == peer.port()
                && e["ip"].as_str().and_then(|s| s.parse::<IpAddr>().ok()) == Some(ip)
        });
    }
}
