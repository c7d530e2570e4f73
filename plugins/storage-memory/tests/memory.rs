//! Bounded RAM storage: round trips across writes and files, eviction, the memory bound.

use std::path::PathBuf;

use rivulet_core::plugin::{Storage, StorageError, StorageSpec};
use rivulet_storage_memory::MemoryStorage;

const PIECE: u64 = 64 * 1024;

fn spec(files: &[u64], limit: u64) -> StorageSpec {
    StorageSpec {
        root: PathBuf::from("unused"),
        files: files
            .iter()
            .enumerate()
            .map(|(i, &l)| (PathBuf::from(format!("f{i}")), l))
            .collect(),
        piece_length: PIECE,
        memory_limit: limit,
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ seed)
        .collect()
}

#[test]
fn reads_span_several_writes_and_files() {
    // Files of 1000, 0 and 200,000 bytes: piece 0 covers file 0 and the start of file 2.
    let st = MemoryStorage::new(&spec(&[1000, 0, 200_000], 1 << 20));
    assert!(!st.persistent());
    let a = pattern(1000, 1);
    let b = pattern(200_000, 2);
    st.write(0, 0, &a).unwrap();
    st.write(1, 0, &[]).unwrap();
    // File 2 in 16 KiB blocks, in a scrambled order.
    for k in [3u64, 0, 5, 1, 4, 2, 6, 7, 8, 9, 10, 11, 12] {
        let s = (k * 16384) as usize;
        let e = (s + 16384).min(b.len());
        st.write(2, s as u64, &b[s..e]).unwrap();
    }
    let mut buf = vec![0; 150_000];
    st.read(2, 10_000, &mut buf).unwrap();
    assert_eq!(buf, &b[10_000..160_000]);
    let mut head = vec![0; 1000];
    st.read(0, 0, &mut head).unwrap();
    assert_eq!(head, a);
    st.flush().unwrap();
}

#[test]
fn unwritten_bytes_are_reported_evicted() {
    let st = MemoryStorage::new(&spec(&[300_000], 1 << 20));
    st.write(0, 0, &pattern(1000, 3)).unwrap();
    let mut buf = vec![0; 1001];
    assert!(matches!(
        st.read(0, 0, &mut buf),
        Err(StorageError::Evicted)
    ));
    assert!(matches!(
        st.read(0, 200_000, &mut buf),
        Err(StorageError::Evicted)
    ));
    assert!(matches!(
        st.read(0, 299_500, &mut buf),
        Err(StorageError::OutOfRange { .. })
    ));
    assert!(matches!(
        st.write(1, 0, &buf),
        Err(StorageError::OutOfRange { .. })
    ));
}

#[test]
fn stays_within_the_bound_after_ten_times_the_bound() {
    let limit = 1 << 20;
    let total = 10 * limit;
    let st = MemoryStorage::new(&spec(&[total], limit));
    let block = pattern(PIECE as usize, 4);
    let mut peak = 0;
    for k in 0..total / PIECE {
        st.write(0, k * PIECE, &block).unwrap();
        peak = peak.max(st.held_bytes());
    }
    assert!(peak <= limit, "held {peak} bytes, limit {limit}");
    assert!(
        st.held_bytes() >= limit - PIECE,
        "kept only {}",
        st.held_bytes()
    );
    let mut buf = vec![0; PIECE as usize];
    assert!(matches!(
        st.read(0, 0, &mut buf),
        Err(StorageError::Evicted)
    ));
    st.read(0, total - PIECE, &mut buf).unwrap();
    assert_eq!(buf, block);
}

#[test]
fn recently_read_data_survives_eviction() {
    let limit = 4 * PIECE;
    let st = MemoryStorage::new(&spec(&[40 * PIECE], limit));
    let block = pattern(PIECE as usize, 5);
    let mut buf = vec![0; PIECE as usize];
    for k in 0..40 {
        st.write(0, k * PIECE, &block).unwrap();
        // A reader keeps going back to piece 0: it must stay while the rest streams past.
        st.read(0, 0, &mut buf).unwrap();
    }
    assert!(matches!(
        st.read(0, PIECE, &mut buf),
        Err(StorageError::Evicted)
    ));
}

#[test]
fn a_limit_below_one_piece_still_holds_the_last_piece() {
    let st = MemoryStorage::new(&spec(&[4 * PIECE], 1000));
    let block = pattern(PIECE as usize, 6);
    st.write(0, PIECE, &block).unwrap();
    let mut buf = vec![0; PIECE as usize];
    st.read(0, PIECE, &mut buf).unwrap();
    assert_eq!(buf, block);
    st.write(0, 2 * PIECE, &block).unwrap();
    assert!(matches!(
        st.read(0, PIECE, &mut buf),
        Err(StorageError::Evicted)
    ));
    assert_eq!(st.held_bytes(), PIECE);
}

#[test]
fn empty_writes_hold_nothing() {
    let st = MemoryStorage::new(&spec(&[PIECE + 10, 0], 1 << 20));
    st.write(0, 100, &[]).unwrap();
    st.write(1, 0, &[]).unwrap();
    st.read(0, 100, &mut []).unwrap();
    assert_eq!(st.held_bytes(), 0);
}
