//! opentracker on loopback: whitelist-only (the Debian build), HTTP and UDP announce on one
//! free port, ready only once a real announce of a whitelisted hash succeeds.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, percent_encode};

use crate::ports::{LOCALHOST, free_port};
use crate::process::{Proc, poll};
use crate::udp_announce::{self, Event, Request};

/// Which announce protocol a torrent names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announce {
    Http,
    Udp,
}

impl Announce {
    pub fn tag(self) -> &'static str {
        match self {
            Announce::Http => "http",
            Announce::Udp => "udp",
        }
    }
}

/// Where the harness's own probe announces come from: never a real peer's address, so a
/// libtorrent client (one peer per IP) cannot mistake it for one.
const PROBE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 254);

pub struct Tracker {
    proc: Proc,
    pub port: u16,
}

impl Tracker {
    /// Starts opentracker serving `info_hashes`; its files live in `dir`.
    pub fn start(dir: &Path, info_hashes: &[[u8; 20]]) -> Tracker {
        assert!(!info_hashes.is_empty(), "a tracker needs a whitelist");
        // opentracker chroot()s to tracker.rootdir and setuid()s to nobody before it reads the
        // whitelist: the path is relative to the chroot and must be readable by nobody.
        let whitelist: String = info_hashes
            .iter()
            .map(|h| format!("{}\n", crate::torrent::hex(h)))
            .collect();
        std::fs::write(dir.join("whitelist"), whitelist).expect("write whitelist");
        set_mode(&dir.join("whitelist"), 0o644);
        set_mode(dir, 0o755);
        let port = free_port(LOCALHOST);
        let conf = dir.join("opentracker.conf");
        std::fs::write(
            &conf,
            format!(
                "listen.tcp {LOCALHOST}:{port}\nlisten.udp {LOCALHOST}:{port}\n\
                 access.whitelist /whitelist\ntracker.rootdir {}\ntracker.user nobody\n",
                dir.display()
            ),
        )
        .expect("write opentracker.conf");
        let mut cmd = Command::new("opentracker");
        cmd.arg("-f").arg(&conf);
        let proc = Proc::spawn("opentracker", cmd, &dir.join("opentracker.log"));
        let mut tracker = Tracker { proc, port };
        tracker.wait_ready(&info_hashes[0]);
        tracker
    }

    pub fn http_url(&self) -> String {
        format!("http://{LOCALHOST}:{}/announce", self.port)
    }

    pub fn udp_url(&self) -> String {
        format!("udp://{LOCALHOST}:{}", self.port)
    }

    pub fn url(&self, proto: Announce) -> String {
        match proto {
            Announce::Http => self.http_url(),
            Announce::Udp => self.udp_url(),
        }
    }

    fn udp_addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.port))
    }

    /// The whitelist is loaded by a thread after start-up: wait for an HTTP announce of a
    /// whitelisted hash to be accepted, then for UDP to answer.
    fn wait_ready(&mut self, hash: &[u8; 20]) {
        let url = format!(
            "{}?info_hash={}&peer_id=-RH0001-000000000000&port=1&uploaded=0&downloaded=0\
             &left=0&compact=1&numwant=0&event=stopped",
            self.http_url(),
            percent_encode(hash, NON_ALPHANUMERIC)
        );
        let waited = poll(Duration::from_secs(15), || {
            if let Some(st) = self.proc.try_status() {
                return Ok(Err(format!("opentracker exited ({st})")));
            }
            match http_get(&url) {
                Ok(body) if contains(&body, b"8:interval") => Ok(Ok(())),
                Ok(body) => Err(String::from_utf8_lossy(&body).into_owned()),
                Err(e) => Err(e.to_string()),
            }
        })
        .and_then(|r| r)
        .and_then(|()| {
            poll(Duration::from_secs(10), || {
                self.try_peers(hash)
                    .map_err(|e| format!("UDP announce: {e}"))
            })
        });
        if let Err(e) = waited {
            panic!(
                "opentracker on port {} did not become ready: {e}\nlog:\n{}",
                self.port,
                self.proc.log_tail(2000)
            );
        }
    }

    fn try_peers(&self, hash: &[u8; 20]) -> anyhow::Result<Vec<SocketAddr>> {
        let probe = SocketAddrV4::new(PROBE_IP, 1);
        let mut req = Request {
            info_hash: *hash,
            peer: probe,
            left: 1,
            event: Event::Started,
        };
        let peers = udp_announce::announce(self.udp_addr(), &req)?;
        req.event = Event::Stopped;
        udp_announce::announce(self.udp_addr(), &req)?;
        Ok(peers
            .into_iter()
            .filter(|p| *p != SocketAddr::V4(probe))
            .collect())
    }

    /// The peers the tracker lists for `hash` (the harness's probe excluded).
    pub fn peers(&self, hash: &[u8; 20]) -> Vec<SocketAddr> {
        self.try_peers(hash)
            .unwrap_or_else(|e| panic!("tracker on port {} failed: {e}", self.port))
    }

    /// Waits until the tracker lists `peer` for `hash`.
    pub fn wait_lists(&self, hash: &[u8; 20], peer: SocketAddr, timeout: Duration) {
        poll(timeout, || {
            let seen = self.peers(hash);
            if seen.contains(&peer) {
                Ok(())
            } else {
                Err(format!("it lists {seen:?}"))
            }
        })
        .unwrap_or_else(|e| panic!("waiting for the tracker to list {peer}: {e}"));
    }

    /// Announces `peer` as a seeder (used for fake peers).
    pub fn announce_seeder(&self, hash: &[u8; 20], peer: SocketAddrV4) {
        let req = Request {
            info_hash: *hash,
            peer,
            left: 0,
            event: Event::Started,
        };
        udp_announce::announce(self.udp_addr(), &req)
            .unwrap_or_else(|e| panic!("announcing {peer}: {e}"));
    }
}

fn http_get(url: &str) -> anyhow::Result<Vec<u8>> {
    let mut resp = ureq::get(url).call()?;
    Ok(resp.body_mut().read_to_vec()?)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}
