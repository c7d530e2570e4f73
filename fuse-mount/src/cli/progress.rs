//! Progress on the terminal: a bar when stderr is a terminal, a plain line every few seconds
//! when it is not (logs, CI).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use rivulet_core::torrent::{Phase, Stats, TorrentHandle};

fn line(s: &Stats) -> String {
    let pct = if s.bytes_total == 0 {
        100.0
    } else {
        s.bytes_have as f64 * 100.0 / s.bytes_total as f64
    };
    let eta = if s.download_rate > 0 && !s.complete {
        format!(" eta {}s", (s.bytes_total - s.bytes_have) / s.download_rate)
    } else {
        String::new()
    };
    format!(
        "{pct:5.1}% {}/{}  down {}/s  up {}/s  peers {}{}{eta}{}",
        HumanBytes(s.bytes_have),
        HumanBytes(s.bytes_total),
        HumanBytes(s.download_rate),
        HumanBytes(s.upload_rate),
        s.peers,
        if s.waiting_reads > 0 {
            format!("  reads waiting {}", s.waiting_reads)
        } else {
            String::new()
        },
        stalled(s),
    )
}

/// Why nothing arrives, when no peer is connected and data is missing: a progress line stuck at
/// 0.0 % says nothing about whether anyone is out there.
fn stalled(s: &Stats) -> String {
    if s.peers > 0 || s.complete || s.phase != Phase::Live {
        return String::new();
    }
    match s.known_peers.values().sum::<usize>() {
        0 => "  (no peers found yet)".to_string(),
        known => format!("  (no peer reachable: {known} known, none connected)"),
    }
}

/// Shows progress until the returned guard is dropped.
pub struct Progress {
    stop: rivulet_core::rt::Sender<()>,
    _task: rivulet_core::rt::Tasks,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn start(handle: TorrentHandle, quiet: bool) -> Progress {
        let (stop, stopped) = rivulet_core::rt::bounded::<()>(1);
        let tty = std::io::stderr().is_terminal();
        let bar = (tty && !quiet).then(|| {
            let total = handle.stats().bytes_total;
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template("{bar:30} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        let bar2 = bar.clone();
        let task = rivulet_core::rt::Tasks::default();
        task.spawn(async move {
            let every = if bar2.is_some() {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(5)
            };
            loop {
                if rivulet_core::rt::timeout(every, stopped.recv())
                    .await
                    .is_ok()
                {
                    return;
                }
                let s = handle.stats();
                match &bar2 {
                    Some(b) => {
                        b.set_position(s.bytes_have);
                        b.set_message(line(&s));
                    }
                    None if !quiet => eprintln!("{}", line(&s)),
                    None => {}
                }
            }
        });
        Progress {
            stop,
            _task: task,
            bar,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        let _ = self.stop.try_send(());
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// One final summary line.
pub fn summary(s: &Stats) -> String {
    line(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_without_peers_says_so_instead_of_sitting_at_zero() {
        let mut s = Stats {
            phase: Phase::Live,
            bytes_total: 100,
            ..Stats::default()
        };
        assert!(line(&s).ends_with("(no peers found yet)"), "{}", line(&s));
        s.known_peers
            .insert(rivulet_core::torrent::PeerSource::Tracker, 3);
        assert!(line(&s).ends_with("(no peer reachable: 3 known, none connected)"));
        s.peers = 1;
        assert!(!line(&s).contains("no peer"));
        s.peers = 0;
        s.complete = true;
        assert!(!line(&s).contains("no peer"));
    }
}
