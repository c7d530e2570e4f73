//! The bytes a reader recently waited for in vain, so that asking again does not wait again.
//!
//! When a kernel readahead request fails, the kernel at once asks again for the first page on
//! its own (filemap_update_page -> read_folio), and that request waited a whole read timeout
//! more: `--read-timeout 5` gave EIO after 10 s (measured with 2 s: EIO after 4.0 s, the second
//! request 4 ms after the first failed). A read's timeout counts from the first wait for its
//! bytes, so a read of bytes that timed out moments ago is served if they have arrived since,
//! and fails at once otherwise.

use std::ops::Range;
use std::time::{Duration, Instant};

/// How long a timed-out range is remembered. The kernel's retry comes within milliseconds; a
/// reader that asks a second later gets a fresh wait.
const REMEMBER: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct GaveUp {
    /// File-relative ranges whose read timed out, and when.
    recent: Vec<(Range<u64>, Instant)>,
}

impl GaveUp {
    /// A read of `range` timed out at `now`.
    pub(crate) fn record(&mut self, range: Range<u64>, now: Instant) {
        self.forget_old(now);
        self.recent.push((range, now));
    }

    /// Whether bytes of `range` timed out in the last moment (a read of them must not wait).
    pub(crate) fn covers(&mut self, range: &Range<u64>, now: Instant) -> bool {
        self.forget_old(now);
        self.recent
            .iter()
            .any(|(r, _)| r.start < range.end && range.start < r.end)
    }

    fn forget_old(&mut self, now: Instant) {
        self.recent
            .retain(|(_, at)| now.saturating_duration_since(*at) < REMEMBER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_overlapping_a_timed_out_range_must_not_wait() {
        let mut g = GaveUp::default();
        let t = Instant::now();
        assert!(!g.covers(&(0..4096), t));
        g.record(0..131_072, t);
        assert!(g.covers(&(0..4096), t + Duration::from_millis(4)));
        assert!(g.covers(&(131_071..140_000), t));
        assert!(!g.covers(&(131_072..140_000), t), "only overlapping bytes");
    }

    #[test]
    fn a_timed_out_range_is_forgotten_after_a_moment() {
        let mut g = GaveUp::default();
        let t = Instant::now();
        g.record(0..4096, t);
        assert!(!g.covers(&(0..4096), t + REMEMBER));
        assert!(g.recent.is_empty());
    }
}
