//! The crash-and-resume check that v1 (`tests/resume.rs`) and v2 (`tests/hybrid.rs`) downloads
//! both pass: a run killed with SIGKILL half-way, then a second run on the same folders.

use std::time::Duration;

use crate::rivulet::Running;

/// Pieces verified in the last moments before the kill may not have reached the resume state.
pub const REFETCH_ALLOWANCE: usize = 16;

/// Starts `run(1)`, kills it with SIGKILL once half of the torrent's `pieces` are verified, then
/// runs `run(2)` to its end (each wait at most `timeout`), and asserts that the second run
/// found on disk what the first verified (less [`REFETCH_ALLOWANCE`]), fetched the rest and
/// fetched again at most that many. The caller checks the bytes.
pub fn kill_half_way_then_resume(pieces: u32, timeout: Duration, run: impl Fn(u32) -> Running) {
    let mut first = run(1);
    first.wait_events(timeout, "half of the pieces", |e| {
        e.verified().len() as u32 >= pieces / 2
    });
    first.proc.kill_hard();
    let before = first.events().verified();
    assert!(
        (before.len() as u32) < pieces,
        "the first run finished before it could be killed; slow the seeder down"
    );

    let mut second = run(2);
    second.wait_success(timeout);
    let after = second.events();
    let resumed = after
        .resumed()
        .unwrap_or_else(|| panic!("no `resumed` event:\n{}", after.tail(10)));
    let fetched = after.verified();
    assert!(
        resumed + fetched.len() as u64 >= pieces as u64,
        "resumed {resumed} + fetched {} do not cover {pieces} pieces",
        fetched.len()
    );
    assert!(
        resumed as usize + REFETCH_ALLOWANCE >= before.len(),
        "the first run verified {} pieces but only {resumed} were resumed",
        before.len()
    );
    let refetched: Vec<u32> = fetched.intersection(&before).copied().collect();
    assert!(
        refetched.len() <= REFETCH_ALLOWANCE,
        "the second run fetched {} pieces the first had verified: {refetched:?}",
        refetched.len()
    );
}
