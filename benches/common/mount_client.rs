//! The two FUSE clients the benchmarks compare, started and stopped alike: `rivulet mount`
//! (release binary) and btfs, each on a fresh mount point, data directory and (rivulet) state
//! directory, so that no mount reuses another's pieces or cached metadata. Shared by
//! `mount_vs_btfs` and the swarm benchmark's streaming scenarios.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rivulet_tests::mount::{MountCmd, Mounted, detach, is_mounted};
use rivulet_tests::ports::{LOCALHOST, free_addr, free_port};
use rivulet_tests::process::Proc;
use rivulet_tests::workdir::WorkDir;

/// How long one read may take before the benchmark calls it failed (btfs reads have no
/// timeout of their own).
pub const READ_LIMIT: Duration = Duration::from_secs(120);
/// How long a mount may take to show the payload.
const LIST_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Client {
    Rivulet,
    Btfs,
}

impl Client {
    pub fn name(self) -> &'static str {
        match self {
            Client::Rivulet => "rivulet",
            Client::Btfs => "btfs",
        }
    }

    /// The clients named in `list` (space- or comma-separated), default both.
    pub fn parse_list(list: Option<&str>) -> Vec<Client> {
        list.unwrap_or("rivulet btfs")
            .split([' ', ','])
            .filter_map(|c| match c.trim() {
                "rivulet" => Some(Client::Rivulet),
                "btfs" => Some(Client::Btfs),
                _ => None,
            })
            .collect()
    }
}

/// A running mount of either client; unmounted (lazily if need be) and killed on drop.
pub struct Running {
    pub mnt: PathBuf,
    rivulet: Option<Mounted>,
    btfs: Option<Proc>,
}

impl Running {
    /// Starts `client` mounting `source` (a .torrent path or a magnet link) on fresh
    /// directories under `work` named after `tag` (rivulet's events in `<tag>.events`, logs in
    /// `<tag>.log`); returns at once, waiting for nothing.
    pub fn start(client: Client, work: &WorkDir, tag: &str, source: &OsStr) -> Running {
        let mnt = work.subdir(&format!("mnt-{tag}"));
        let data = work.subdir(&format!("data-{tag}"));
        match client {
            Client::Rivulet => {
                let m = MountCmd::new(Path::new(source), &mnt)
                    .data(&data)
                    .state_dir(&work.subdir(&format!("state-{tag}")))
                    .listen(free_addr(LOCALHOST))
                    .events(&work.join(&format!("{tag}.events")))
                    .start(work.path(), tag);
                Running {
                    mnt,
                    rivulet: Some(m),
                    btfs: None,
                }
            }
            Client::Btfs => {
                let port = free_port(LOCALHOST);
                let mut cmd = Command::new("btfs");
                cmd.arg("-f")
                    .arg(format!("--data-directory={}", data.display()))
                    .arg(format!("--min-port={port}"))
                    .arg(format!("--max-port={port}"))
                    .arg(source)
                    .arg(&mnt);
                let proc = Proc::spawn(tag, cmd, &work.join(&format!("{tag}.log")));
                Running {
                    mnt,
                    rivulet: None,
                    btfs: Some(proc),
                }
            }
        }
    }

    fn proc(&mut self) -> &mut Proc {
        match (&mut self.rivulet, &mut self.btfs) {
            (Some(m), _) => &mut m.proc,
            (None, Some(p)) => p,
            (None, None) => unreachable!("a running mount has a process"),
        }
    }

    /// Waits (polling every millisecond) until `rel` is visible in the mount; its full path.
    pub fn wait_listed(&mut self, rel: &Path) -> PathBuf {
        let path = self.mnt.join(rel);
        let end = Instant::now() + LIST_LIMIT;
        while path.metadata().is_err() {
            self.proc().assert_running("mounting");
            assert!(Instant::now() < end, "{} never listed", path.display());
            std::thread::sleep(Duration::from_millis(1));
        }
        path
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            let ok = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mnt)
                .output()
                .is_ok_and(|o| o.status.success());
            if !ok {
                detach(&self.mnt);
            }
        }
        // Waits for the process to end by itself; otherwise the kill on drop ends it.
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end && self.proc().is_running() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Reads `len` bytes at `offset` in a thread, failing after READ_LIMIT instead of hanging the
/// bench.
pub fn timed_read(path: &Path, offset: u64, len: u64) -> Result<(Duration, Vec<u8>), String> {
    let path = path.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let t = Instant::now();
        let r = File::open(&path).and_then(|f| {
            let mut buf = vec![0u8; len as usize];
            f.read_exact_at(&mut buf, offset).map(|()| buf)
        });
        let _ = tx.send(r.map(|b| (t.elapsed(), b)));
    });
    match rx.recv_timeout(READ_LIMIT) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {READ_LIMIT:?}")),
    }
}

/// The median of `v` (the upper one of an even count); NaN if empty.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}
