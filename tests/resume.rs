//! Resume after a crash: `rivulet download` is killed with SIGKILL about half-way (watching its
//! events log) and started again on the same output directory; the second run reports the pieces
//! it found on disk (`resumed`), fetches the rest, and re-fetches at most a few of the pieces the
//! first run had already verified.

use std::time::Duration;

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::resume_check::kill_half_way_then_resume;
use rivulet_tests::rivulet::Download;
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

#[test]
fn resume_after_kill_9() {
    let fixture = Fixture::single();
    let work = WorkDir::new("resume");
    // 64 MiB at 8 MiB/s: the first run is still busy when half of it is there.
    let swarm = Swarm::start(&work, fixture, SeederOptions::limited(8 << 20));
    let torrent = swarm.torrent(&work, Announce::Http);
    let out = work.subdir("out");
    kill_half_way_then_resume(fixture.meta.piece_count(), Duration::from_secs(180), |n| {
        Download::new(&torrent, &out)
            .listen(free_addr(LOCALHOST))
            .events(&work.join(&format!("events-{n}.jsonl")))
            .spawn(work.path(), &format!("download-{n}"))
    });
    assert_same_files(fixture, &out, "resumed download");
}
