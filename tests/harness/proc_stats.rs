//! What a process holds, from /proc: resident memory and open file descriptors, sampled in the
//! background so that a test can assert a bound on the peak.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A field of /proc/PID/status in KiB (VmRSS, VmHWM, RssAnon, ...); `None` once it is gone.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Open file descriptors of `pid` (sockets, files, pipes); `None` once it is gone.
pub fn fd_count(pid: u32) -> Option<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count() as u64)
}

/// Samples RSS (VmRSS and RssAnon) and open fds of a process every 50 ms and keeps the peaks.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    rss_kib: Arc<AtomicU64>,
    anon_kib: Arc<AtomicU64>,
    fds: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let rss_kib = Arc::new(AtomicU64::new(0));
        let anon_kib = Arc::new(AtomicU64::new(0));
        let fds = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, rss_kib, anon_kib, fds) =
                (stop.clone(), rss_kib.clone(), anon_kib.clone(), fds.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Some(r) = status_kib(pid, "VmRSS") {
                        rss_kib.fetch_max(r, Ordering::SeqCst);
                    }
                    if let Some(r) = status_kib(pid, "RssAnon") {
                        anon_kib.fetch_max(r, Ordering::SeqCst);
                    }
                    if let Some(n) = fd_count(pid) {
                        fds.fetch_max(n, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        Sampler {
            stop,
            rss_kib,
            anon_kib,
            fds,
            thread: Some(thread),
        }
    }

    /// The highest VmRSS seen so far, MiB.
    pub fn peak_rss_mib(&self) -> u64 {
        self.rss_kib.load(Ordering::SeqCst) / 1024
    }

    /// The highest RssAnon seen so far, MiB: heap only, without the page cache of mapped
    /// files (a mapped storage's pieces count in VmRSS but are not what an attack grows).
    pub fn peak_anon_mib(&self) -> u64 {
        self.anon_kib.load(Ordering::SeqCst) / 1024
    }

    /// The most open fds seen so far.
    pub fn peak_fds(&self) -> u64 {
        self.fds.load(Ordering::SeqCst)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
