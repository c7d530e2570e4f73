//! libtorrent (Debian's python3-libtorrent) as a real peer and DHT node: a small Python script
//! runs one libtorrent session on a loopback address of its own, optionally seeding a torrent,
//! and prints what happens as JSON lines (`listening`, `seeding`, `dht_announce` when another
//! node announces a peer to it, `dht_get_peers` when one looks an info-hash up through it). The
//! test waits on those lines.
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

s = lt.session({
    "listen_interfaces": "%s:%d" % (cfg["ip"], cfg["port"]),
    "outgoing_interfaces": cfg["ip"],
    "enable_dht": True,
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
    "alert_mask": lt.alert.category_t.dht_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.error_notification,
})
handle = None
if cfg["torrent"]:
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(cfg["torrent"])
    atp.save_path = cfg["data"]
    handle = s.add_torrent(atp)

seeding = False
last_announce = 0.0
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
        elif isinstance(a, (lt.listen_failed_alert, lt.torrent_error_alert)):
            say("error", message=a.message())
    if handle is not None:
        st = handle.status()
        if not seeding and st.is_seeding:
            seeding = True
            say("seeding")
        # libtorrent announces once at start (before its DHT has any node) and then every 15
        # minutes: repeat it until the test is over.
        if seeding and time.time() - last_announce > 3:
            handle.force_dht_announce()
            last_announce = time.time()
"#;

/// What a node seeds: the torrent and the directory holding its data.
pub struct Seed<'a> {
    pub torrent: &'a Path,
    pub data: &'a Path,
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
        let addr = SocketAddr::from((ip, port));
        let cfg = json!({
            "ip": ip.to_string(),
            "port": port,
            "bootstrap": bootstrap.map(|b| b.to_string()).unwrap_or_default(),
            "torrent": seed.as_ref().map(|s| s.torrent.display().to_string()),
            "data": seed.as_ref().map(|s| s.data.display().to_string()),
        });
        let mut cmd = Command::new(PYTHON);
        cmd.arg("-c").arg(SCRIPT).arg(cfg.to_string());
        let out = dir.join(format!("libtorrent-{ip}-{port}.out"));
        let proc = Proc::spawn(&format!("libtorrent {addr}"), cmd, &out);
        let mut node = LibtorrentNode { proc, out, addr };
        node.wait_event(Duration::from_secs(30), "libtorrent to listen", |e| {
            e["event"] == "listening"
        });
        if seed.is_some() {
            node.wait_event(Duration::from_secs(60), "libtorrent to seed", |e| {
                e["event"] == "seeding"
            });
        }
        node
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
