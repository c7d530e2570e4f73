//! Drives the `rivulet` binary through its command-line contract (`info`, `download`, `seed`).
//!
//! The binary is `RIVULET_BIN` or `rivulet` next to the test executable's directory
//! (`target/<profile>/rivulet`, built by `cargo build -p rivulet-fuse --bin rivulet`).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::events::Events;
use crate::fixture::Fixture;
use crate::ports::{LOCALHOST, free_addr};
use crate::process::{Proc, poll};
use crate::tracker::Tracker;
use crate::workdir::WorkDir;

/// Path of the binary under test.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("RIVULET_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .join("rivulet");
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build -p rivulet-fuse --bin rivulet` \
         (tests/run-all.sh does) or set RIVULET_BIN",
        bin.display()
    );
    bin
}

/// Variables of the harness itself (`RIVULET_KEEP_TMP`, `RIVULET_BENCH_RUNS`, ...): rivulet
/// reads `RIVULET_*` as settings and refuses unknown keys, so they must not reach it.
fn is_harness_var(name: &str) -> bool {
    ["KEEP_TMP", "BIN", "FIXTURE_DIR", "TEST_TIMEOUT"]
        .iter()
        .any(|v| name.strip_prefix("RIVULET_") == Some(v))
        || ["RIVULET_BENCH_", "RIVULET_FUZZ_"]
            .iter()
            .any(|p| name.starts_with(p))
}

/// `rivulet` with the harness's own variables taken out of its environment.
pub fn command() -> Command {
    let mut cmd = Command::new(binary());
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_harness_var) {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A finished run: exit status and both output streams.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Panics unless the run failed cleanly: non-zero exit, exactly one non-empty line on
    /// stderr, no panic message.
    pub fn assert_clean_failure(&self, what: &str) {
        assert!(
            !self.status.success(),
            "{what}: expected a failure, got {}; stdout: {}",
            self.status,
            self.stdout
        );
        assert!(
            !self.stderr.contains("panicked"),
            "{what}: rivulet panicked: {}",
            self.stderr
        );
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{what}: expected one error line on stderr, got: {:?}",
            self.stderr
        );
    }
}

/// Runs `rivulet ARGS` to the end (at most `timeout`), capturing its output in `dir`.
pub fn run(dir: &Path, tag: &str, args: &[OsString], timeout: Duration) -> Finished {
    let mut cmd = command();
    cmd.args(args);
    let (out, err) = (
        dir.join(format!("{tag}.stdout")),
        dir.join(format!("{tag}.stderr")),
    );
    let mut proc = Proc::spawn_split(&format!("rivulet {tag}"), cmd, &out, &err);
    let status = proc.wait_exit(timeout);
    Finished {
        status,
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    }
}

/// `rivulet info TORRENT`.
pub fn info(dir: &Path, torrent: &Path) -> Finished {
    run(
        dir,
        "info",
        &["info".into(), torrent.into()],
        Duration::from_secs(20),
    )
}

/// Builder methods for the flags every engine command takes (`download`, `seed`, `mount`), for a
/// builder with `args: Vec<OsString>` and `events: Option<PathBuf>` fields: one definition for
/// [`Download`] and [`crate::mount::MountCmd`].
macro_rules! engine_flags {
    ($builder:ty) => {
        impl $builder {
            fn opt(mut self, name: &str, value: impl Into<std::ffi::OsString>) -> Self {
                self.args.push(name.into());
                self.args.push(value.into());
                self
            }

            pub fn listen(self, addr: std::net::SocketAddr) -> Self {
                self.opt("--listen", addr.to_string())
            }

            /// `--events FILE`; the started run reads it back with `events()`.
            pub fn events(mut self, path: &std::path::Path) -> Self {
                self.events = Some(path.to_path_buf());
                self.opt("--events", path)
            }

            pub fn peer(self, addr: std::net::SocketAddr) -> Self {
                self.opt("--peer", addr.to_string())
            }

            pub fn picker(self, name: &str) -> Self {
                self.opt("--picker", name)
            }

            pub fn storage(self, name: &str) -> Self {
                self.opt("--storage", name)
            }

            pub fn config(self, path: &std::path::Path) -> Self {
                self.opt("--config", path)
            }

            pub fn state_dir(self, dir: &std::path::Path) -> Self {
                self.opt("--state-dir", dir)
            }

            /// `--dht-bootstrap ADDR`: join the DHT through this node.
            pub fn dht_bootstrap(self, addr: std::net::SocketAddr) -> Self {
                self.opt("--dht-bootstrap", addr.to_string())
            }

            pub fn no_dht(mut self) -> Self {
                self.args.push("--no-dht".into());
                self
            }
        }
    };
}
pub(crate) use engine_flags;

/// The arguments of `rivulet download`.
pub struct Download {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    events: Option<PathBuf>,
}

engine_flags!(Download);

impl Download {
    pub fn new(torrent: &Path, output: &Path) -> Download {
        Download {
            args: vec![
                "download".into(),
                torrent.into(),
                "--output".into(),
                output.into(),
            ],
            env: Vec::new(),
            events: None,
        }
    }

    pub fn seed(mut self) -> Self {
        self.args.push("--seed".into());
        self
    }

    /// Sets an environment variable of the rivulet process (e.g. `RIVULET_PICKER`).
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The command line after the binary's name.
    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    /// Starts the download in the background; its output goes to `dir/<tag>.log`.
    pub fn spawn(&self, dir: &Path, tag: &str) -> Running {
        let mut cmd = command();
        cmd.args(&self.args).envs(self.env.iter().cloned());
        Running {
            proc: Proc::spawn(
                &format!("rivulet {tag}"),
                cmd,
                &dir.join(format!("{tag}.log")),
            ),
            events: self.events.clone(),
        }
    }
}

/// `rivulet seed TORRENT --data DIR --listen ADDR --events FILE`, started in the background;
/// returns once it listens.
pub fn seed(dir: &Path, torrent: &Path, data: &Path, listen: SocketAddr, events: &Path) -> Running {
    let mut seed = seed_with(dir, torrent, data, listen, events, &[]);
    seed.wait_listening();
    seed
}

/// [`seed`] with more arguments (`--max-peers N`, `--config F`, ...), not waited for.
pub fn seed_with(
    dir: &Path,
    torrent: &Path,
    data: &Path,
    listen: SocketAddr,
    events: &Path,
    extra: &[&str],
) -> Running {
    let mut cmd = command();
    cmd.arg("seed")
        .arg(torrent)
        .arg("--data")
        .arg(data)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--events")
        .arg(events)
        .args(extra);
    Running {
        proc: Proc::spawn("rivulet seed", cmd, &dir.join("seed.log")),
        events: Some(events.to_path_buf()),
    }
}

/// `rivulet seed` (with `extra` flags) of a copy of `fixture`'s payload, announcing to a tracker
/// of its own, once it listens and the tracker lists it: the seed attack tests run against.
pub fn listed_seed(
    work: &WorkDir,
    fixture: &Fixture,
    extra: &[&str],
) -> (Tracker, Running, SocketAddr) {
    let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
    let data = work.subdir("data");
    fixture.copy_payload(&data);
    let torrent = fixture.torrent(&tracker.http_url(), "http", work.path());
    let addr = free_addr(LOCALHOST);
    let mut seed = seed_with(
        work.path(),
        &torrent,
        &data,
        addr,
        &work.join("seed-events.jsonl"),
        extra,
    );
    seed.wait_events(Duration::from_secs(60), "the seed to listen", |e| {
        e.has("listening")
    });
    tracker.wait_lists(&fixture.meta.info_hash, addr, Duration::from_secs(30));
    (tracker, seed, addr)
}

/// A rivulet process the test watches through its events file.
pub struct Running {
    pub proc: Proc,
    events: Option<PathBuf>,
}

impl Running {
    pub fn new(proc: Proc, events: Option<PathBuf>) -> Running {
        Running { proc, events }
    }

    pub fn events(&self) -> Events {
        Events::read(
            self.events
                .as_deref()
                .expect("this run was started without --events"),
        )
    }

    /// Waits for the `listening` event (a seed or mount ready for peers).
    pub fn wait_listening(&mut self) {
        self.wait_events(Duration::from_secs(60), "rivulet to listen", |e| {
            e.has("listening")
        });
    }

    /// Waits until `cond` holds for the events so far; panics (with the log and the last
    /// events) on timeout or if rivulet exits first.
    pub fn wait_events(&mut self, timeout: Duration, what: &str, cond: impl Fn(&Events) -> bool) {
        let waited = poll(timeout, || {
            let ev = self.events();
            if cond(&ev) {
                return Ok(Ok(()));
            }
            if let Some(st) = self.proc.try_status() {
                return Ok(Err(format!("rivulet exited ({st})")));
            }
            Err(format!("{} events so far", ev.lines.len()))
        })
        .and_then(|r| r);
        if let Err(e) = waited {
            panic!(
                "waiting for {what}: {e}\nlast events:\n{}\nlog tail:\n{}",
                self.events().tail(20),
                self.proc.log_tail(3000)
            );
        }
    }

    /// Waits for a successful exit (a verified, complete download).
    pub fn wait_success(&mut self, timeout: Duration) {
        let st = self.proc.wait_exit(timeout);
        if !st.success() {
            let events = match &self.events {
                Some(_) => self.events().tail(20),
                None => String::new(),
            };
            panic!(
                "rivulet failed ({st})\nlast events:\n{events}\nlog tail:\n{}",
                self.proc.log_tail(3000)
            );
        }
    }

    /// SIGTERM and wait: a clean stop must exit 0.
    pub fn terminate(&mut self, timeout: Duration) {
        self.proc.signal(libc::SIGTERM);
        let st = self.proc.wait_exit(timeout);
        assert!(
            st.success(),
            "rivulet did not exit cleanly on SIGTERM ({st}); log tail:\n{}",
            self.proc.log_tail(3000)
        );
    }
}
