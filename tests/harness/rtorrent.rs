//! rtorrent (Debian's 0.9.8, libtorrent-rakshasa) as a real peer that speaks BitTorrent v1 only:
//! given a hybrid torrent it joins the v1 swarm (SHA-1 info-hash) and knows nothing of v2.
//!
//! It runs as a daemon (no curses) from an rc file of its own: one address and port, no DHT, no
//! peer exchange, the torrent's trackers over HTTP, downloads held to 1 KiB/s. It loads a
//! torrent only if the torrent has a tracker (or the DHT is on). It treats a hybrid torrent's
//! pad files as ordinary files, so the data folder must hold them, full of zeros. It is ready
//! once its hash check ended, which an event hook reports by appending `<INFO-HASH> <complete
//! 0|1>` to a file.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::ports::free_port;
use crate::process::{Proc, wait_for};

/// Its download limit: low enough that in the seconds a test runs it passes on nothing it did
/// not start with, so that what a client gets from it was in its data from the start.
const DOWNLOAD_KIB_PER_SEC: u32 = 1;

/// A running rtorrent; killed on drop.
pub struct Rtorrent {
    _proc: Proc,
    /// Where it listens for peers.
    pub addr: SocketAddr,
}

impl Rtorrent {
    /// Starts rtorrent on `ip` sharing `torrent` with its data in `data` (folder of the
    /// torrent's name inside it); returns once it has checked what `data` holds.
    pub fn start(dir: &Path, ip: Ipv4Addr, torrent: &Path, data: &Path) -> Rtorrent {
        let port = free_port(ip);
        let addr = SocketAddr::from((ip, port));
        let work = dir.join(format!("rtorrent-{port}"));
        let session = work.join("session");
        std::fs::create_dir_all(&session).expect("rtorrent session dir");
        let checked = work.join("hash_done");
        let rc = work.join("rtorrent.rc");
        std::fs::write(&rc, rc_file(addr, data, &session, &checked, torrent))
            .expect("write rtorrent.rc");
        let mut cmd = Command::new("rtorrent");
        cmd.arg("-n")
            .arg("-o")
            .arg(format!("import={}", rc.display()));
        let mut proc = Proc::spawn("rtorrent", cmd, &work.join("rtorrent.out"));
        wait_for(
            Duration::from_secs(30),
            "rtorrent to check its data",
            || {
                proc.assert_running("rtorrent");
                std::fs::metadata(&checked).is_ok_and(|m| m.len() > 0)
            },
        );
        Rtorrent { _proc: proc, addr }
    }
}

/// rc files name everything by absolute path.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).expect("absolute path")
}

/// rtorrent's own syntax: a comma inside an `-o` option would split it, a file does not.
fn rc_file(
    addr: SocketAddr,
    data: &Path,
    session: &Path,
    checked: &Path,
    torrent: &Path,
) -> String {
    let port = addr.port();
    format!(
        "system.daemon.set = true
directory.default.set = {data}
session.path.set = {session}
network.port_range.set = {port}-{port}
network.port_random.set = no
network.bind_address.set = {ip}
network.local_address.set = {ip}
dht.mode.set = disable
protocol.pex.set = no
trackers.use_udp.set = no
throttle.global_down.max_rate.set_kb = {down_kib}
method.set_key = event.download.hash_done, checked, \"execute2={{sh,-c,\\\"echo \\$0 \\$1 >> {checked}\\\",$d.hash=,$d.complete=}}\"
load.start = {torrent}
",
        data = absolute(data).display(),
        session = absolute(session).display(),
        ip = addr.ip(),
        down_kib = DOWNLOAD_KIB_PER_SEC,
        checked = absolute(checked).display(),
        torrent = absolute(torrent).display(),
    )
}
