//! Child processes of a test: started in their own process group with output captured to a log
//! file, killed (the whole group) when dropped, and [`wait_for`], the one polling helper every
//! wait goes through so that nothing can hang a test.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often [`wait_for`] looks again; short, because every wait costs test time.
const POLL: Duration = Duration::from_millis(50);

/// Polls `cond` until it returns true; panics with `what` once `timeout` has passed.
pub fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `step` until it returns `Ok`; after `timeout` returns the last `Err` (what it was
/// still waiting for), so that the caller can fail with its own context such as a log tail.
pub fn poll<T>(
    timeout: Duration,
    mut step: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match step() {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?}: {last}"));
        }
        std::thread::sleep(POLL);
    }
}

/// A running child process that is killed together with its process group on drop.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` in a new process group; stdout and stderr both go to `log`.
    pub fn spawn(name: &str, cmd: Command, log: &Path) -> Proc {
        let out = create_log(name, log);
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone log handle for {name}: {e}"));
        Self::spawn_to(name, cmd, out, err, log)
    }

    /// Like [`Proc::spawn`] with stdout and stderr in files of their own; the log tail is
    /// stderr's.
    pub fn spawn_split(name: &str, cmd: Command, stdout: &Path, stderr: &Path) -> Proc {
        let out = create_log(name, stdout);
        let err = create_log(name, stderr);
        Self::spawn_to(name, cmd, out, err, stderr)
    }

    fn spawn_to(name: &str, mut cmd: Command, out: File, err: File, log: &Path) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `bytes` of the captured output.
    pub fn log_tail(&self, bytes: u64) -> String {
        tail_of(&self.log, bytes)
    }

    /// The exit status if the process has ended (reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Panics with the log tail if the process has already exited.
    pub fn assert_running(&mut self, context: &str) {
        if let Some(st) = self.try_status() {
            panic!(
                "{} exited ({st}) while {context}; log tail:\n{}",
                self.name,
                self.log_tail(3000)
            );
        }
    }

    /// Waits for the process to exit on its own; panics with the log tail on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_status() {
                return st;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not exit within {timeout:?}; log tail:\n{}",
                    self.name,
                    self.log_tail(3000)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for exit and panics unless the exit status is success.
    pub fn wait_success(&mut self, timeout: Duration) {
        let st = self.wait_exit(timeout);
        if !st.success() {
            panic!(
                "{} failed ({st}); log tail:\n{}",
                self.name,
                self.log_tail(3000)
            );
        }
    }

    /// Sends `signal` to the process itself (not its group).
    pub fn signal(&mut self, signal: libc::c_int) {
        if self.try_status().is_some() {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// SIGKILL now (like a crash or power cut) and reap.
    pub fn kill_hard(&mut self) -> ExitStatus {
        self.kill_group(libc::SIGKILL);
        self.wait_exit(Duration::from_secs(10))
    }

    fn kill_group(&mut self, signal: libc::c_int) {
        if self.try_status().is_some() {
            return;
        }
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: the child leads its own process group (process_group(0) at spawn) and is not
        // reaped yet, so the group id still names only our children.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_group(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

fn create_log(name: &str, path: &Path) -> File {
    File::create(path)
        .unwrap_or_else(|e| panic!("cannot create log {} for {name}: {e}", path.display()))
}

/// The last `bytes` of a file, lossily decoded; empty if it cannot be read.
pub fn tail_of(path: &Path, bytes: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
