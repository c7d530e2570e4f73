//! A hostile tracker streaming a 4,000 MB reply, announced to again and again: each announce
//! fails at the 2 MiB cap, and the refused connection is closed, never reused. Reused, the next
//! announce read the rest of the old reply into memory (4.0 GB RssAnon for a 4,000 MB reply).
//!
//! Alone in its test binary, so that the process's peak memory is this test's.

use std::time::{Duration, Instant};

use rivulet_core::plugin::{Tracker, TrackerError};
use rivulet_tests::hostile_tracker::{HostileTracker, Hostility};
use rivulet_tests::proc_stats::status_kib;
use rivulet_tests::tracker_client::announce_request;
use rivulet_tracker_http::HttpTracker;

const ANNOUNCES: u32 = 4;
/// Peak resident memory allowed (VmHWM, which bounds RssAnon): the test binary alone takes
/// about 10 MiB, a refused reply 2 MiB.
const PEAK_BOUND_MIB: u64 = 64;

#[test]
fn every_announce_to_an_endless_reply_fails_and_memory_stays_bounded() {
    let hostile = HostileTracker::start(Hostility::EndlessReply);
    let tracker = HttpTracker::open(&hostile.url).unwrap();
    let req = announce_request(
        *b"\x02rivulet-endless-\xfe\x00\x01",
        b"-RV0001-ffffffffffff",
        6881,
        Duration::from_secs(20),
    );
    let mut results = Vec::new();
    for _ in 0..ANNOUNCES {
        let start = Instant::now();
        let r = tracker.announce(&req).map(|a| a.peers.len());
        results.push((r, start.elapsed()));
    }
    let pid = std::process::id();
    let peak = status_kib(pid, "VmHWM").unwrap() / 1024;
    let anon = status_kib(pid, "RssAnon").unwrap() / 1024;
    eprintln!(
        "{ANNOUNCES} announces refused; {} requests served; peak RSS {peak} MiB, RssAnon {anon} MiB",
        hostile.requests()
    );
    assert!(peak < PEAK_BOUND_MIB, "peak RSS {peak} MiB; {results:?}");
    for (n, (r, took)) in results.iter().enumerate() {
        assert!(
            matches!(r, Err(TrackerError::BadReply(m)) if m.contains("larger than")),
            "announce {n}: {r:?}"
        );
        assert!(
            *took < Duration::from_secs(15),
            "announce {n} took {took:?}"
        );
    }
    assert_eq!(
        hostile.requests(),
        ANNOUNCES,
        "each announce should be a request of its own"
    );
}
