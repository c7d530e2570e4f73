//! Resume after a crash: `rivulet download` is killed with SIGKILL about half-way (watching its
//! events log) and started again on the same output directory; the second run reports the pieces
//! it found on disk (`resumed`), fetches the rest, and re-fetches at most a few of the pieces the
//! first run had already verified.

use std::time::Duration;

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::rivulet::Download;
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

/// Pieces verified in the last moments before the kill may not have reached the resume state.
const REFETCH_ALLOWANCE: usize = 16;

#[test]
fn resume_after_kill_9() {
    let fixture = Fixture::single();
    let pieces = fixture.meta.piece_count();
    let work = WorkDir::new("resume");
    // 64 MiB at 8 MiB/s: the first run is still busy when half of it is there.
    let swarm = Swarm::start(&work, fixture, SeederOptions::limited(8 << 20));
    let torrent = swarm.torrent(&work, Announce::Http);
    let out = work.subdir("out");

    let first_events = work.join("events-1.jsonl");
    let mut first = Download::new(&torrent, &out)
        .listen(free_addr(LOCALHOST))
        .events(&first_events)
        .spawn(work.path(), "download-1");
    first.wait_events(Duration::from_secs(120), "half of the pieces", |e| {
        e.verified().len() as u32 >= pieces / 2
    });
    first.proc.kill_hard();
    let before = first.events().verified();
    assert!(
        (before.len() as u32) < pieces,
        "the first run finished before it could be killed; slow the seeder down"
    );

    let second_events = work.join("events-2.jsonl");
    let mut second = Download::new(&torrent, &out)
        .listen(free_addr(LOCALHOST))
        .events(&second_events)
        .spawn(work.path(), "download-2");
    second.wait_success(Duration::from_secs(180));
    assert_same_files(fixture, &out, "resumed download");

    let after = second.events();
    let resumed = after
        .resumed()
        .unwrap_or_else(|| panic!("no `resumed` event:\n{}", after.tail(10)));
    let fetched = after.verified();
    assert!(
        resumed + fetched.len() as u64 >= pieces as u64,
        "resumed {resumed} + fetched {} does not cover {pieces} pieces",
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
