//! Readahead of one reader: follows where it goes and says what to fetch next.
//!
//! The state lives per reader (one open file handle, one HTTP response), never per read call and
//! never shared between readers: a fresh window per read loses all readahead, and one window for
//! all readers makes two players fight over it. Offsets here are relative to the file; the
//! reader maps them onto the torrent.

use std::ops::Range;
use std::time::{Duration, Instant};

/// Window after the first read and after every seek.
pub(crate) const MIN_WINDOW: u64 = 1 << 20;
/// The window doubles on each sequential read up to this.
pub(crate) const MAX_WINDOW: u64 = 32 << 20;
/// Reads may reach us slightly out of order (the kernel sends several readahead requests at
/// once); a read this far behind the furthest byte read still continues the run.
const REORDER_SLACK: u64 = 256 << 10;
/// Below this much elapsed time the reader's rate is too noisy to estimate.
const MIN_RATE_SAMPLE: Duration = Duration::from_millis(20);

/// What to ask the engine for after a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hint {
    /// File-relative byte range, never empty and never past the end of the file.
    pub range: Range<u64>,
    /// When the reader will reach `range.start` at its observed rate; zero when the rate is not
    /// known yet (first read, just after a seek). The engine puts every readahead deadline after
    /// the reads made at the same moment, so a hint due "now" never overtakes the read that
    /// caused it.
    pub urgency: Duration,
}

/// One file handle's sequential-run tracker.
#[derive(Debug)]
pub(crate) struct Readahead {
    /// Furthest byte read in the current run (exclusive end).
    high_water: u64,
    window: u64,
    /// Where and when the current sequential run began; `None` before the first read.
    run_start: Option<(u64, Instant)>,
}

impl Default for Readahead {
    fn default() -> Self {
        Readahead {
            high_water: 0,
            window: MIN_WINDOW,
            run_start: None,
        }
    }
}

impl Readahead {
    /// Records a read of `offset..offset+len` at `now` and returns the range to prefetch next,
    /// or `None` at the end of the file.
    pub(crate) fn on_read(
        &mut self,
        offset: u64,
        len: u64,
        file_len: u64,
        now: Instant,
    ) -> Option<Hint> {
        let end = offset.saturating_add(len).min(file_len);
        let continues = self.run_start.is_some()
            && offset >= self.high_water.saturating_sub(REORDER_SLACK)
            && offset <= self.high_water.saturating_add(self.window);
        if continues {
            self.window = (self.window * 2).min(MAX_WINDOW);
            self.high_water = self.high_water.max(end);
        } else {
            self.window = MIN_WINDOW;
            self.high_water = end;
            self.run_start = Some((offset, now));
        }
        let start = self.high_water;
        let stop = start.saturating_add(self.window).min(file_len);
        if start >= stop {
            return None;
        }
        Some(Hint {
            range: start..stop,
            urgency: self.time_to_reach(offset, start, now),
        })
    }

    /// Time the reader, now at `pos`, needs to get to `target` at the rate of its current run.
    fn time_to_reach(&self, pos: u64, target: u64, now: Instant) -> Duration {
        let Some((run_offset, run_time)) = self.run_start else {
            return Duration::ZERO;
        };
        let elapsed = now.saturating_duration_since(run_time);
        let done = self.high_water.saturating_sub(run_offset);
        if elapsed < MIN_RATE_SAMPLE || done == 0 {
            return Duration::ZERO;
        }
        let ahead = target.saturating_sub(pos) as f64;
        elapsed.mul_f64(ahead / done as f64)
    }

    #[cfg(test)]
    fn window(&self) -> u64 {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const FILE: u64 = 1 << 30;

    #[test]
    fn first_read_prefetches_the_minimum_window_at_once() {
        let mut ra = Readahead::default();
        let h = ra.on_read(0, 128 * KIB, FILE, Instant::now()).unwrap();
        assert_eq!(h.range, 128 * KIB..128 * KIB + MIN_WINDOW);
        assert_eq!(h.urgency, Duration::ZERO);
    }

    #[test]
    fn sequential_reads_double_the_window_up_to_the_cap() {
        let mut ra = Readahead::default();
        let t = Instant::now();
        let mut windows = Vec::new();
        for i in 0..10 {
            let h = ra.on_read(i * 128 * KIB, 128 * KIB, FILE, t).unwrap();
            assert_eq!(h.range.start, (i + 1) * 128 * KIB);
            windows.push(h.range.end - h.range.start);
        }
        assert_eq!(
            windows,
            [1, 2, 4, 8, 16, 32, 32, 32, 32, 32]
                .map(|m| m * MIB)
                .to_vec()
        );
    }

    #[test]
    fn seek_resets_the_window_at_the_new_offset() {
        let mut ra = Readahead::default();
        let t = Instant::now();
        for i in 0..6 {
            ra.on_read(i * 128 * KIB, 128 * KIB, FILE, t);
        }
        assert_eq!(ra.window(), MAX_WINDOW);
        let h = ra.on_read(500 * MIB, 64 * KIB, FILE, t).unwrap();
        assert_eq!(
            h.range,
            500 * MIB + 64 * KIB..500 * MIB + 64 * KIB + MIN_WINDOW
        );
        assert_eq!(h.urgency, Duration::ZERO);
        // Seeking backwards is a seek too.
        ra.on_read(500 * MIB + 64 * KIB, 64 * KIB, FILE, t);
        assert_eq!(ra.window(), 2 * MIN_WINDOW);
        let h = ra.on_read(0, 4 * KIB, FILE, t).unwrap();
        assert_eq!(h.range, 4 * KIB..4 * KIB + MIN_WINDOW);
    }

    #[test]
    fn slightly_reordered_and_skipping_reads_continue_the_run() {
        let mut ra = Readahead::default();
        let t = Instant::now();
        ra.on_read(0, 128 * KIB, FILE, t);
        ra.on_read(256 * KIB, 128 * KIB, FILE, t);
        // Arrives after its successor: still the same run, the window keeps growing and the
        // hint does not move backwards.
        let h = ra.on_read(128 * KIB, 128 * KIB, FILE, t).unwrap();
        assert_eq!(ra.window(), 4 * MIB);
        assert_eq!(h.range.start, 384 * KIB);
        // A jump forward that stays inside the prefetched window (pages served from the cache)
        // continues the run as well.
        ra.on_read(2 * MIB, 128 * KIB, FILE, t);
        assert_eq!(ra.window(), 8 * MIB);
    }

    #[test]
    fn hints_stop_at_the_end_of_the_file() {
        let mut ra = Readahead::default();
        let t = Instant::now();
        let len = 1500 * KIB;
        let h = ra.on_read(0, 1024 * KIB, len, t).unwrap();
        assert_eq!(h.range, 1024 * KIB..len);
        assert_eq!(ra.on_read(1024 * KIB, 1024 * KIB, len, t), None);
        assert_eq!(ra.on_read(len, 4 * KIB, len, t), None);
    }

    #[test]
    fn urgency_follows_the_reader_rate() {
        let mut ra = Readahead::default();
        let t0 = Instant::now();
        ra.on_read(0, MIB, FILE, t0);
        // 2 MiB read in one second: 2 MiB/s. The next range starts 1 MiB past this read's
        // offset, so it is needed in half a second.
        let h = ra
            .on_read(MIB, MIB, FILE, t0 + Duration::from_secs(1))
            .unwrap();
        assert_eq!(h.range.start, 2 * MIB);
        let ms = h.urgency.as_millis();
        assert!((490..=510).contains(&ms), "urgency {ms} ms");
    }
}
