//! Memory the cache lets go goes back to the OS: the process's anonymous memory follows the
//! bound while data streams through, and falls back once the storage is dropped.
//!
//! Alone in its test binary, so that the process's memory is this test's.

use std::path::PathBuf;

use rivulet_core::plugin::{Storage, StorageSpec};
use rivulet_storage_memory::MemoryStorage;

const PIECE: u64 = 1 << 20;
const LIMIT: u64 = 16 << 20;

fn rss_anon_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib / 1024
}

#[test]
fn evicted_and_dropped_chunks_return_their_memory_to_the_os() {
    let before = rss_anon_mib();
    let spec = StorageSpec {
        root: PathBuf::from("unused"),
        // Odd-sized pieces as well as whole ones, as the last piece of a torrent is.
        files: vec![("a".into(), 200 * PIECE + 12345), ("b".into(), 56 * PIECE)],
        piece_length: PIECE,
        memory_limit: LIMIT,
    };
    let st = MemoryStorage::new(&spec);
    // Written from several threads, as the engine's verifiers do: glibc then serves the chunks
    // from per-thread arenas, which keep freed memory.
    let peak = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4u64)
            .map(|t| {
                let (st, spec) = (&st, &spec);
                scope.spawn(move || {
                    let block = vec![7u8; PIECE as usize];
                    let mut peak = 0;
                    for (file, (_, len)) in spec.files.iter().enumerate() {
                        let mut at = t * PIECE;
                        while at < *len {
                            let n = PIECE.min(len - at);
                            st.write(file, at, &block[..n as usize]).unwrap();
                            at += 4 * PIECE;
                            peak = peak.max(rss_anon_mib());
                        }
                    }
                    peak
                })
            })
            .collect();
        writers
            .into_iter()
            .map(|w| w.join().unwrap())
            .max()
            .unwrap()
    });
    drop(st);
    let after = rss_anon_mib();
    eprintln!("RssAnon {before} MiB before, peak {peak} MiB, {after} MiB after the drop");
    assert!(
        peak <= before + LIMIT / PIECE + 8,
        "peak {peak} MiB from {before} MiB"
    );
    assert!(
        after <= before + 2,
        "{after} MiB held after the drop, {before} MiB before"
    );
}
