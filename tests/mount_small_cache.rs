//! A memory-storage mount whose cache is far smaller than the torrent, under many readers at
//! once: 32 concurrent random readers and then `sha1sum` of the whole file. Their readahead
//! together must fit the cache (otherwise they evict each other's pieces before anyone reads
//! them and the same pieces are fetched again and again), and a read that cannot be served
//! still fails at its timeout.

mod plugins_support;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plugins_support::memory_config;
use rand::{Rng, SeedableRng};
use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::mount::MountCmd;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::workdir::WorkDir;

const KIB: u64 = 1 << 10;
/// `memory_cache_mib`: 32 pieces of the 256-piece fixture.
const CACHE_MIB: u64 = 8;
const RANDOM_READERS: usize = 32;
const READS_EACH: usize = 4;
const READ_TIMEOUT_S: u64 = 10;
/// Random reads plus a whole-file `sha1sum` over loopback; minutes only when pieces are fetched
/// again and again.
const BOUND: Duration = Duration::from_secs(120);

/// Runs `f` on its own thread; `None` if it did not finish within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn many_readers_of_a_small_memory_cache_neither_thrash_nor_hang() {
    let work = WorkDir::new("mount-small-cache");
    let fixture = Fixture::single();
    let Swarm {
        tracker: _tracker,
        seeder,
        ..
    } = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = fixture.torrent(&_tracker.url(Announce::Http), "http", work.path());
    let cfg = memory_config(&work, CACHE_MIB);
    let mnt = work.subdir("mnt");
    let events = work.join("events.jsonl");
    let mut mounted = MountCmd::new(&torrent, &mnt)
        .config(&cfg)
        .listen(free_addr(LOCALHOST))
        .events(&events)
        .read_timeout(READ_TIMEOUT_S)
        .spawn(work.path(), "mount");
    let path = mnt.join(&fixture.files[0].rel);
    let len = fixture.files[0].len;
    let pieces = fixture.meta.piece_count() as usize;

    let started = Instant::now();
    let readers = (0..RANDOM_READERS).map(|i| {
        let path = path.clone();
        std::thread::spawn(move || -> Result<(), String> {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
            let file = File::open(&path).map_err(|e| format!("open: {e}"))?;
            let mut got = vec![0u8; (64 * KIB) as usize];
            let mut want = got.clone();
            for _ in 0..READS_EACH {
                let at = rng.random_range(0..len - got.len() as u64);
                file.read_exact_at(&mut got, at)
                    .map_err(|e| format!("read at {at}: {e}"))?;
                fixture.read_at(at, &mut want).unwrap();
                if got != want {
                    return Err(format!("wrong bytes at {at}"));
                }
            }
            Ok(())
        })
    });
    let readers: Vec<_> = readers.collect();
    let random = within(BOUND, move || {
        readers
            .into_iter()
            .map(|r| r.join().expect("reader thread"))
            .collect::<Result<Vec<()>, String>>()
    });
    match random {
        Some(Ok(_)) => {}
        Some(Err(e)) => panic!("random reader: {e}\n{}", mounted.proc.log_tail(3000)),
        None => panic!(
            "random readers still busy after {BOUND:?}\n{}",
            mounted.proc.log_tail(3000)
        ),
    }
    let random_took = started.elapsed();
    let after_random = rivulet_tests::events::Events::read(&events).verified_count();

    let sha1sum = within(BOUND, {
        let path = path.clone();
        move || Command::new("sha1sum").arg(path).output()
    });
    let out = match sha1sum {
        Some(out) => out.expect("run sha1sum"),
        None => panic!(
            "sha1sum still reading after {BOUND:?}\n{}",
            mounted.proc.log_tail(3000)
        ),
    };
    assert!(
        out.status.success(),
        "sha1sum: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        mounted.proc.log_tail(3000)
    );
    let sum = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        sum.split_whitespace().next(),
        Some(fixture.files[0].sha1_hex.as_str()),
        "wrong data through the mount"
    );
    let verified = rivulet_tests::events::Events::read(&events).verified_count();
    eprintln!(
        "{RANDOM_READERS}x{READS_EACH} random reads in {random_took:.1?} ({after_random} \
         verifications), then sha1sum in {:.1?}: {verified} verifications for {pieces} pieces",
        started.elapsed() - random_took
    );
    assert!(
        verified < 2 * pieces,
        "{verified} verifications for {pieces} pieces: readers evicted each other's pieces"
    );

    // With the seeder gone, a piece the cache let go of cannot come back: its read fails at
    // the read timeout, neither sooner nor much later.
    drop(seeder);
    // The kernel's page cache may still hold piece 0 from the sha1sum: drop it, so the read
    // reaches the mount.
    std::fs::write("/proc/sys/vm/drop_caches", "1").expect("drop the page cache (needs root)");
    let file = File::open(&path).unwrap();
    let mut buf = vec![0u8; (64 * KIB) as usize];
    let t = Instant::now();
    let err = within(Duration::from_secs(3 * READ_TIMEOUT_S), move || {
        file.read_exact_at(&mut buf, 0)
    })
    .expect("the read of an evicted piece never ended")
    .expect_err("piece 0 is long evicted and nobody has it");
    let took = t.elapsed();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let timeout = Duration::from_secs(READ_TIMEOUT_S);
    assert!(
        (timeout..timeout + Duration::from_millis(1500)).contains(&took),
        "EIO after {took:?} with --read-timeout {READ_TIMEOUT_S}"
    );
    mounted.terminate(Duration::from_secs(30));
}
