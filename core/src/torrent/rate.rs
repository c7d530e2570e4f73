//! Transfer rates (for display and the choker) and token-bucket rate limits.

use std::time::{Duration, Instant};

/// A smoothed bytes-per-second estimate, updated by [`RateMeter::tick`].
#[derive(Debug, Default)]
pub(crate) struct RateMeter {
    pending: u64,
    rate: f64,
    last: Option<Instant>,
}

impl RateMeter {
    /// A meter counting from `start`: its first tick already gives a rate. A default meter's
    /// first tick only starts the clock, so a new peer's pipeline stayed at its starting 16
    /// blocks for up to a second, too few for a 4 MB/s seeder 50 ms away (benches/RESULTS.md,
    /// issue 13, scenario 5: 32 pieces in the second second where the caps allowed about 50).
    pub fn since(start: Instant) -> Self {
        RateMeter {
            last: Some(start),
            ..Default::default()
        }
    }

    pub fn add(&mut self, bytes: u64) {
        self.pending += bytes;
    }

    /// Folds the bytes since the last tick into the estimate.
    pub fn tick(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let dt = now.duration_since(last).as_secs_f64();
            if dt > 0.0 {
                let inst = self.pending as f64 / dt;
                // About a 3-second memory at one tick a second.
                self.rate = self.rate * 0.6 + inst * 0.4;
            }
        }
        self.pending = 0;
        self.last = Some(now);
    }

    pub fn rate(&self) -> u64 {
        self.rate as u64
    }

    #[cfg(test)]
    pub fn with_rate(rate: u64) -> Self {
        RateMeter {
            rate: rate as f64,
            ..Default::default()
        }
    }
}

/// Limits a byte stream to `rate` bytes per second with a one-second burst; 0 means unlimited.
pub(crate) struct RateLimiter {
    rate: u64,
    state: std::sync::Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(rate: u64) -> Self {
        RateLimiter {
            rate,
            state: std::sync::Mutex::new((rate as f64, Instant::now())),
        }
    }

    /// Takes `bytes` from the bucket, waiting until they are available.
    pub async fn acquire(&self, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        let wait = {
            let Ok(mut s) = self.state.lock() else { return };
            let now = Instant::now();
            let (tokens, last) = &mut *s;
            *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate as f64)
                .min(self.rate as f64);
            *last = now;
            *tokens -= bytes as f64;
            if *tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-*tokens / self.rate as f64)
            }
        };
        if !wait.is_zero() {
            crate::rt::sleep(wait).await;
        }
    }
}
