//! A real opentracker on 127.0.0.1 for tests, stopped on drop.
//!
//! The Debian build is whitelist-only, chroot()s to `tracker.rootdir` and drops to `nobody`
//! before it reads the whitelist, so the whitelist lives in a world-readable root directory
//! and is named relative to it. opentracker binds with SO_REUSEPORT: a second instance on a
//! busy port would silently share it, so the port is one the kernel just handed out for both
//! TCP and UDP. The whitelist loads asynchronously; `start` returns once a real HTTP announce
//! and a BEP 15 connect have been answered.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Opentracker {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Opentracker {
    /// Starts opentracker serving `info_hashes`.
    pub fn start(info_hashes: &[[u8; 20]]) -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let whitelist: String = info_hashes.iter().map(|h| hex(h) + "\n").collect();
        let list = dir.path().join("whitelist");
        std::fs::write(&list, whitelist)?;
        std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o644))?;
        let port = free_port()?;
        let conf = dir.path().join("opentracker.conf");
        std::fs::write(
            &conf,
            format!(
                "listen.tcp 127.0.0.1:{port}\nlisten.udp 127.0.0.1:{port}\n\
                 access.whitelist /whitelist\ntracker.rootdir {}\ntracker.user nobody\n",
                dir.path().display()
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("tracker.log"))?;
        let child = Command::new("opentracker")
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run opentracker: {e}")))?;
        let mut tracker = Opentracker { child, port, dir };
        let first = info_hashes.first().copied().unwrap_or_default();
        tracker.wait_ready(&first)?;
        Ok(tracker)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    pub fn udp_url(&self) -> String {
        format!("udp://127.0.0.1:{}/announce", self.port)
    }

    fn wait_ready(&mut self, hash: &[u8; 20]) -> io::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "opentracker exited ({status}): {}",
                    self.log()
                )));
            }
            if self.announce_ok(hash) && self.udp_connect_ok() {
                // Take the probe peer out again so tests see only their own peers.
                let _ = self.http_get(&probe_query(hash, "&event=stopped"));
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "opentracker not ready within {START_TIMEOUT:?}: {}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn announce_ok(&self, hash: &[u8; 20]) -> bool {
        self.http_get(&probe_query(hash, ""))
            .is_ok_and(|reply| reply.windows(10).any(|w| w == b"8:interval"))
    }

    fn http_get(&self, path_and_query: &str) -> io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        write!(
            s,
            "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )?;
        let mut reply = Vec::new();
        s.read_to_end(&mut reply)?;
        Ok(reply)
    }

    fn udp_connect_ok(&self) -> bool {
        let probe = || -> io::Result<bool> {
            let s = UdpSocket::bind("127.0.0.1:0")?;
            s.set_read_timeout(Some(Duration::from_millis(300)))?;
            let mut req = 0x41727101980u64.to_be_bytes().to_vec();
            req.extend(0u32.to_be_bytes());
            req.extend(0x1234u32.to_be_bytes());
            s.send_to(&req, ("127.0.0.1", self.port))?;
            let mut buf = [0; 64];
            let n = s.recv(&mut buf)?;
            Ok(n >= 16 && buf[..8] == [0, 0, 0, 0, 0, 0, 0x12, 0x34])
        };
        probe().unwrap_or(false)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tracker.log")).unwrap_or_default()
    }
}

impl Drop for Opentracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn probe_query(hash: &[u8; 20], extra: &str) -> String {
    let hash: String = hash.iter().map(|b| format!("%{b:02x}")).collect();
    format!(
        "/announce?info_hash={hash}&peer_id=-RVPROBE-00000000000&port=1&uploaded=0&downloaded=0\
         &left=0&compact=1&numwant=0{extra}"
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A port free for both TCP and UDP on 127.0.0.1 right now.
fn free_port() -> io::Result<u16> {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::other("no port free for both TCP and UDP"))
}
