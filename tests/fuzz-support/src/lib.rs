//! What every parser fuzz test shares: how many cases to run ([`config`]), a global allocator
//! that records the largest single allocation so a test can prove a hostile length was refused
//! before anything was allocated ([`budget`]), and structured mutations of valid inputs
//! ([`mutate`]).
//!
//! The case count per property is `RIVULET_FUZZ_CASES` (default [`DEFAULT_CASES`], sized for CI);
//! the full run uses 100000:
//! `RIVULET_FUZZ_CASES=100000 cargo test --release -p rivulet-core -p rivulet-tracker-http -p rivulet-tracker-udp fuzz`.

pub mod budget;
pub mod mutate;

use proptest::test_runner::Config;

/// Cases per property when `RIVULET_FUZZ_CASES` is not set.
pub const DEFAULT_CASES: u32 = 2_000;

/// Cases per property: `RIVULET_FUZZ_CASES` or [`DEFAULT_CASES`].
pub fn cases() -> u32 {
    std::env::var("RIVULET_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The proptest configuration of a fuzz property: [`cases`] cases, failures saved next to the
/// test source as regression seeds (proptest's default), no shrinking time limit.
pub fn config() -> Config {
    Config {
        cases: cases(),
        ..Config::default()
    }
}
