//! Drives `rivulet mount`: starts it in the background, waits until the kernel shows the
//! filesystem, and never leaves a mount behind (lazily unmounted, then the process group killed,
//! when the handle is dropped).

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use serde_json::Value;

use crate::ports::{LOCALHOST, free_addr};
use crate::process::wait_for;
use crate::process::{Proc, poll};
use crate::rivulet::{Running, command, engine_flags};
use crate::swarm::Swarm;
use crate::tracker::Announce;
use crate::workdir::WorkDir;

/// The status document inside a mount (fuse-mount's `STATUS_PATH`).
pub const STATUS_PATH: &str = ".rivulet/status.json";
/// The progress attribute on every file and folder of a mount.
pub const PROGRESS_XATTR: &str = "user.rivulet.progress";

/// The arguments of `rivulet mount`.
pub struct MountCmd {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    dir: PathBuf,
    events: Option<PathBuf>,
}

engine_flags!(MountCmd);

impl MountCmd {
    pub fn new(torrent: &Path, dir: &Path) -> MountCmd {
        MountCmd::many(&[torrent], dir)
    }

    /// A mount of every torrent in `torrents` (none: with [`MountCmd::watch`] only).
    pub fn many(torrents: &[&Path], dir: &Path) -> MountCmd {
        let mut args: Vec<OsString> = vec!["-q".into(), "mount".into()];
        args.extend(torrents.iter().map(|t| t.as_os_str().to_owned()));
        args.push(dir.into());
        MountCmd {
            args,
            env: Vec::new(),
            dir: dir.to_path_buf(),
            events: None,
        }
    }

    /// Also mounts the torrents of the watch folder `dir`.
    pub fn watch(self, dir: &Path) -> Self {
        self.opt("--watch", dir)
    }

    pub fn data(self, dir: &Path) -> Self {
        self.opt("--data", dir)
    }

    pub fn read_timeout(self, secs: u64) -> Self {
        self.opt("--read-timeout", secs.to_string())
    }

    /// Sets an environment variable of the rivulet process (e.g. `XDG_CACHE_HOME`).
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Fetch only what is read.
    pub fn lazy(mut self) -> Self {
        self.args.push("--lazy".into());
        self
    }

    /// Starts the mount (output in `dir/<tag>.log`) and waits until the kernel lists it.
    pub fn spawn(&self, dir: &Path, tag: &str) -> Mounted {
        let mut m = self.start(dir, tag);
        m.wait_mounted(Duration::from_secs(30));
        m
    }

    /// Starts the mount and returns at once (benchmarks time the wait themselves).
    pub fn start(&self, dir: &Path, tag: &str) -> Mounted {
        let mut cmd = command();
        cmd.args(&self.args).envs(self.env.iter().cloned());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let proc = Proc::spawn(
            &format!("rivulet mount {tag}"),
            cmd,
            &dir.join(format!("{tag}.log")),
        );
        Mounted {
            run: Running::new(proc, self.events.clone()),
            dir: self.dir.clone(),
        }
    }
}

/// A running `rivulet mount`.
pub struct Mounted {
    /// The process and its events (`proc`, `events()`, `wait_events`, `terminate`).
    run: Running,
    pub dir: PathBuf,
}

impl std::ops::Deref for Mounted {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.run
    }
}

impl std::ops::DerefMut for Mounted {
    fn deref_mut(&mut self) -> &mut Running {
        &mut self.run
    }
}

impl Mounted {
    fn wait_mounted(&mut self, timeout: Duration) {
        let waited = poll(timeout, || {
            if let Some(st) = self.proc.try_status() {
                return Ok(Err(format!("rivulet exited ({st})")));
            }
            if is_mounted(&self.dir) {
                Ok(Ok(()))
            } else {
                Err("not in /proc/self/mountinfo yet".into())
            }
        })
        .and_then(|r| r);
        if let Err(e) = waited {
            panic!(
                "mount on {} did not appear: {e}\nlog tail:\n{}",
                self.dir.display(),
                self.proc.log_tail(3000)
            );
        }
    }

    /// A path inside the mount.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn is_mounted(&self) -> bool {
        is_mounted(&self.dir)
    }

    /// `.rivulet/status.json`, parsed.
    pub fn status(&self) -> Value {
        let text = std::fs::read(self.path(STATUS_PATH))
            .unwrap_or_else(|e| panic!("reading {STATUS_PATH}: {e}"));
        serde_json::from_slice(&text).unwrap_or_else(|e| {
            panic!(
                "{STATUS_PATH} is not JSON ({e}): {}",
                String::from_utf8_lossy(&text)
            )
        })
    }

    /// Waits for rivulet to exit by itself (after an unmount or a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.proc.wait_exit(timeout)
    }

    /// `fusermount3 -u DIR`, as a user would unmount it.
    pub fn fusermount_u(&self) -> std::process::Output {
        Command::new("fusermount3")
            .arg("-u")
            .arg(&self.dir)
            .output()
            .expect("run fusermount3")
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if is_mounted(&self.dir) {
            // Lazily: a reader the test left behind must not keep the mount (or the test) alive.
            detach(&self.dir);
        }
        // Proc's own drop kills the process group.
    }
}

/// True if `dir` (absolute, no symlinks, as the kernel lists it) is a mount point of this
/// mount namespace. Never touches `dir` itself, which may be a hung or dead mount.
pub fn is_mounted(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.to_string_lossy();
    // Field 5 is the mount point, with spaces and the like escaped as octal.
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape_mountinfo(mp) == want)
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// `umount -l DIR`.
pub fn detach(dir: &Path) {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    unsafe {
        libc::umount2(c.as_ptr(), libc::MNT_DETACH);
    }
}

/// Every regular file under `dir` (relative path -> size), skipping the status folder; lists
/// with `read_dir` and `symlink_metadata` only, so it never reads file data.
pub fn files_in(dir: &Path) -> std::collections::BTreeMap<PathBuf, u64> {
    fn go(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, u64>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()));
        for e in entries {
            let p = e
                .unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()))
                .path();
            let rel = p.strip_prefix(root).expect("below the root").to_path_buf();
            if rel == Path::new(".rivulet") {
                continue;
            }
            let m = std::fs::symlink_metadata(&p)
                .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
            if m.is_dir() {
                go(root, &p, out);
            } else {
                out.insert(rel, m.len());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    go(dir, dir, &mut out);
    out
}

/// The `user.rivulet.progress` attribute of `path`.
pub fn progress_xattr(path: &Path) -> String {
    let c = CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
    let name = CString::new(PROGRESS_XATTR).expect("name without NUL");
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the length given.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert!(
        n >= 0,
        "getxattr {PROGRESS_XATTR} on {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    buf.truncate(n as usize);
    String::from_utf8(buf).expect("progress attribute is UTF-8")
}

/// Waits until `dir` is a mount point; panics after `timeout`.
pub fn wait_mounted(dir: &Path, timeout: Duration) {
    wait_for(timeout, &format!("a mount on {}", dir.display()), || {
        is_mounted(dir)
    });
}

/// Detaches whatever is mounted on `dir` (a mount whose daemon died answers ENOTCONN until
/// then) and waits until it is gone.
pub fn clear_dead_mount(dir: &Path) {
    if !is_mounted(dir) {
        return;
    }
    detach(dir);
    wait_for(
        Duration::from_secs(10),
        &format!("{} to be unmounted", dir.display()),
        || !is_mounted(dir),
    );
}

/// A `--lazy` mount of the torrent `swarm` seeds (HTTP tracker), with its data, mount point and
/// events file in `work`.
pub fn lazy_mount(work: &WorkDir, swarm: &Swarm) -> Mounted {
    let torrent = swarm.torrent(work, Announce::Http);
    MountCmd::new(&torrent, &work.subdir("mnt"))
        .data(&work.subdir("data"))
        .listen(free_addr(LOCALHOST))
        .events(&work.join("events.jsonl"))
        .lazy()
        .spawn(work.path(), "mount")
}
