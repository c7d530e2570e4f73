//! Crashes: `rivulet download` killed with SIGKILL at random moments, five times in a row (set
//! `RIVULET_CRASH_KILLS=N` for more; `RIVULET_CRASH_SEED` replays a run), then allowed to
//! finish: the result is byte-identical and no piece verified by an earlier run is fetched again
//! (a verified piece was written before its event, so the restart's re-hash finds it even when
//! the resume file lagged). The same for `rivulet mount` with a reader active: kill -9, clear
//! the dead mount, mount again, and the read completes with the right bytes.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::mount::{MountCmd, clear_dead_mount};
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::process::Proc;
use rivulet_tests::rivulet::Download;
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn rng() -> ChaCha8Rng {
    let seed = env_u64("RIVULET_CRASH_SEED").unwrap_or_else(rand::random);
    eprintln!("crash schedule seed {seed} (RIVULET_CRASH_SEED={seed} replays it)");
    ChaCha8Rng::seed_from_u64(seed)
}

#[test]
fn download_killed_five_times_then_finished_is_exact_and_refetches_nothing() {
    let kills = env_u64("RIVULET_CRASH_KILLS").unwrap_or(5);
    let mut rng = rng();
    let fixture = Fixture::single();
    let work = WorkDir::new("crash-download");
    // 64 MiB at 6 MiB/s: the download is still going after every kill.
    let swarm = Swarm::start(&work, fixture, SeederOptions::limited(6 << 20));
    let torrent = swarm.torrent(&work, Announce::Http);
    let out = work.subdir("out");
    let mut earlier: BTreeSet<u32> = BTreeSet::new();
    let mut last_run_total = 0;
    for run in 1..=kills + 1 {
        let events = work.join(&format!("events-{run}.jsonl"));
        let mut r = Download::new(&torrent, &out)
            .listen(free_addr(LOCALHOST))
            .events(&events)
            .spawn(work.path(), &format!("download-{run}"));
        r.wait_events(Duration::from_secs(60), "the run to start", |e| {
            e.has("resumed")
        });
        let ev = r.events();
        let resumed = ev.resumed().expect("resumed event") as usize;
        assert!(
            resumed >= earlier.len(),
            "run {run} found {resumed} pieces on disk, but earlier runs verified {}",
            earlier.len()
        );
        if run <= kills {
            let wait = Duration::from_millis(rng.random_range(800..2500));
            std::thread::sleep(wait);
            r.proc.kill_hard();
        } else {
            r.wait_success(Duration::from_secs(180));
        }
        let ev = r.events();
        let verified = ev.verified();
        let refetched: Vec<u32> = verified.intersection(&earlier).copied().collect();
        eprintln!(
            "run {run}: resumed {resumed}, verified {} new pieces{}",
            verified.len(),
            if run <= kills { ", then SIGKILL" } else { "" }
        );
        assert!(
            refetched.is_empty(),
            "run {run} fetched again pieces an earlier run had verified: {refetched:?}"
        );
        last_run_total = resumed + verified.len();
        earlier.extend(verified);
    }
    assert_same_files(fixture, &out, "download after repeated kill -9");
    // A kill can land between a piece's write and its event, so `earlier` may miss a piece that
    // is on disk; the last run accounts for every piece: found on disk or fetched, never both.
    assert_eq!(
        last_run_total as u32,
        fixture.meta.piece_count(),
        "the last run's resumed and newly verified pieces must cover the torrent exactly"
    );
}

#[test]
fn mount_killed_with_a_reader_active_then_remounted_reads_exactly() {
    let fixture = Fixture::single();
    let mut rng = rng();
    let work = WorkDir::new("crash-mount");
    let swarm = Swarm::start(&work, fixture, SeederOptions::limited(8 << 20));
    let torrent = swarm.torrent(&work, Announce::Http);
    let data = work.subdir("data");
    let mnt = work.subdir("mnt");
    let file = mnt.join(&fixture.files[0].rel);
    let mut before = BTreeSet::new();
    for run in 1..=2 {
        let events = work.join(&format!("mount-events-{run}.jsonl"));
        let mut m = MountCmd::new(&torrent, &mnt)
            .data(&data)
            .events(&events)
            .listen(free_addr(LOCALHOST))
            .read_timeout(120)
            .spawn(work.path(), &format!("mount-{run}"));
        let mut cmd = Command::new("sha1sum");
        cmd.arg(&file);
        let mut reader = Proc::spawn("sha1sum", cmd, &work.join(&format!("reader-{run}.log")));
        if run == 1 {
            m.wait_events(Duration::from_secs(60), "a first piece", |e| {
                !e.verified().is_empty()
            });
            std::thread::sleep(Duration::from_millis(rng.random_range(200..1500)));
            m.proc.kill_hard();
            before = m.events().verified();
            let st = reader.wait_exit(Duration::from_secs(30));
            assert!(
                !st.success(),
                "the reader finished although its mount was killed under it"
            );
            clear_dead_mount(&mnt);
        } else {
            reader.wait_success(Duration::from_secs(180));
            let got = std::fs::read_to_string(reader.log_path()).unwrap_or_default();
            assert!(
                got.starts_with(&fixture.files[0].sha1_hex),
                "read through the remount: {got} want {}",
                fixture.files[0].sha1_hex
            );
            let ev = m.events();
            let resumed = ev.resumed().expect("resumed event") as usize;
            assert!(
                resumed >= before.len(),
                "the remount found {resumed} pieces, the killed mount had verified {}",
                before.len()
            );
            let refetched: Vec<u32> = ev.verified().intersection(&before).copied().collect();
            assert!(
                refetched.is_empty(),
                "refetched after remount: {refetched:?}"
            );
            m.terminate(Duration::from_secs(20));
            clear_dead_mount(&mnt);
        }
    }
}
