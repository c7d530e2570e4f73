//! Debian's `chromium`, headless, on a page under test: the rendered DOM (`--dump-dom`), a
//! screenshot (`--screenshot`), and a browser driven through the DevTools protocol over
//! `--remote-debugging-pipe` (file descriptors 3 and 4, NUL-separated JSON), so a test can set
//! a file input and click buttons as a person would, with the page's own script doing the rest.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::process::Proc;
use crate::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(60);

/// chromium with the flags a test run needs: no sandbox (root), no GPU, no network of its own,
/// a fresh profile in `work`.
fn chromium(work: &WorkDir, tag: &str) -> Command {
    let mut c = Command::new("chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--window-size=1200,800",
    ])
    .arg(format!(
        "--user-data-dir={}",
        work.subdir(&format!("chromium-{tag}")).display()
    ));
    c
}

/// The page's DOM once its scripts ran for `budget_ms` of virtual time.
pub fn dump_dom(work: &WorkDir, tag: &str, url: &str, budget_ms: u32) -> String {
    let mut c = chromium(work, tag);
    c.arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(url);
    let out = work.join(&format!("{tag}.html"));
    let mut proc = Proc::spawn_split(tag, c, &out, &work.join(&format!("{tag}.err")));
    assert!(
        proc.wait_exit(BOUND).success(),
        "chromium --dump-dom failed"
    );
    std::fs::read_to_string(&out).unwrap_or_default()
}

/// Takes a screenshot of `url` into `png`.
pub fn screenshot(work: &WorkDir, tag: &str, url: &str, png: &Path) {
    let mut c = chromium(work, tag);
    c.arg("--virtual-time-budget=3000")
        .arg(format!("--screenshot={}", png.display()))
        .arg(url);
    let log = work.join(&format!("{tag}.log"));
    let mut proc = Proc::spawn(tag, c, &log);
    assert!(
        proc.wait_exit(BOUND).success(),
        "chromium --screenshot failed"
    );
}

/// A headless browser showing one page, driven over the DevTools pipe.
pub struct Browser {
    _proc: Proc,
    to: std::io::PipeWriter,
    from: mpsc::Receiver<Value>,
    session: String,
    next_id: u64,
}

impl Browser {
    /// Opens `url` in a new headless chromium and attaches to its page.
    pub fn open(work: &WorkDir, url: &str) -> Browser {
        let (chrome_reads, to) = std::io::pipe().expect("pipe");
        let (from_chrome, chrome_writes) = std::io::pipe().expect("pipe");
        let (r, w) = (chrome_reads.as_raw_fd(), chrome_writes.as_raw_fd());
        let mut c = chromium(work, "driven");
        c.arg("--remote-debugging-pipe").arg(url);
        // SAFETY: only async-signal-safe fcntl/dup2/close calls between fork and exec. The
        // pipe ends are first copied above 9, so that one already sitting on 3 or 4 is neither
        // overwritten by the other nor left close-on-exec.
        unsafe {
            c.pre_exec(move || {
                let (r2, w2) = (
                    libc::fcntl(r, libc::F_DUPFD, 10),
                    libc::fcntl(w, libc::F_DUPFD, 10),
                );
                if r2 < 0 || w2 < 0 || libc::dup2(r2, 3) < 0 || libc::dup2(w2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(r2);
                libc::close(w2);
                Ok(())
            });
        }
        let proc = Proc::spawn("chromium (driven)", c, &work.join("chromium-driven.log"));
        drop((chrome_reads, chrome_writes));
        let (tx, from) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from_chrome);
            loop {
                let mut msg = Vec::new();
                match reader.read_until(0, &mut msg) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                msg.pop_if(|b| *b == 0);
                if let Ok(v) = serde_json::from_slice::<Value>(&msg)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        let mut b = Browser {
            _proc: proc,
            to,
            from,
            session: String::new(),
            next_id: 0,
        };
        let targets = b.call("Target.getTargets", json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .unwrap_or_else(|| panic!("no page target: {targets}"));
        let target = page["targetId"].clone();
        let attached = b.call(
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        b.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        b
    }

    /// Sends a command (to the page once attached) and waits for its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = Value::from(self.session.clone());
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        let deadline = Instant::now() + BOUND;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(v) = self.from.recv_timeout(left) else {
                break;
            };
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
        panic!("chromium did not answer {method}");
    }

    /// Evaluates `expr` in the page and returns its value.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(
            r["exceptionDetails"].is_null(),
            "{expr}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page.
    pub fn wait_until(&mut self, expr: &str, what: &str) {
        let deadline = Instant::now() + BOUND;
        while Instant::now() < deadline {
            if self.eval(expr) == Value::Bool(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out waiting for {what} ({expr})");
    }

    /// Puts `file` into the file input found by CSS `selector`, as a person choosing it would.
    pub fn choose_file(&mut self, selector: &str, file: &Path) {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": format!("document.querySelector({selector:?})") }),
        );
        let object = r["result"]["objectId"].clone();
        assert!(object.is_string(), "no element {selector}: {r}");
        self.call(
            "DOM.setFileInputFiles",
            json!({ "files": [file.display().to_string()], "objectId": object }),
        );
    }
}
