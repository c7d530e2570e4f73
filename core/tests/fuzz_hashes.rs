//! Generated-input tests of serving BEP 52 hash requests (`Metainfo::serve_hashes`): v2
//! torrents of random piece counts and piece lengths, and requests of any field values, most
//! near the valid ones. Never a panic, never an allocation beyond one answer; every answer is
//! the layer's hashes (padding past the file's end) and uncles that prove them to the root.
//!
//! Cases per property: RIVULET_FUZZ_CASES (see rivulet-fuzz-support).

use proptest::prelude::*;
use rivulet_core::metainfo::Metainfo;
use rivulet_core::metainfo::merkle::{self, Hash};
use rivulet_core::metainfo::piece_tree::{MAX_REQUEST_HASHES, proven_node};
use rivulet_fuzz_support::budget::{BudgetAlloc, largest_allocation};
use rivulet_fuzz_support::config;

#[global_allocator]
static ALLOC: BudgetAlloc = BudgetAlloc;

/// A v2-only torrent of one file of `pieces` pieces of `piece_length` with a made-up layer
/// (only the layer and its root matter here); its root and layer.
fn torrent(pieces: u32, piece_length: u64) -> (Metainfo, Hash, Vec<Hash>) {
    let layer: Vec<Hash> = (0..pieces)
        .map(|i| merkle::sha256(&i.to_be_bytes()))
        .collect();
    let root = merkle::root_from_layer(&layer, piece_length);
    let length = pieces as u64 * piece_length - 1;
    let mut t =
        format!("d4:infod9:file treed1:fd0:d6:lengthi{length}e11:pieces root32:").into_bytes();
    t.extend(root);
    t.extend(
        format!(
            "eee12:meta versioni2e4:name1:f12:piece lengthi{piece_length}ee12:piece layersd32:"
        )
        .bytes(),
    );
    t.extend(root);
    t.extend(format!("{}:", 32 * layer.len()).bytes());
    layer.iter().for_each(|l| t.extend(l));
    t.extend(b"ee");
    (Metainfo::from_bytes(&t).unwrap(), root, layer)
}

/// A field: mostly small (near the valid values), sometimes anything.
fn field(small: u32) -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0..=small, 1 => any::<u32>()]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_hashes_served_prove_to_the_root(
        pieces in 2u32..1200,
        shift in 0u32..3,
        other_root in any::<bool>(),
        base in field(4),
        index_slot in field(1200),
        length_log in field(11),
        proof_layers in field(14),
    ) {
        let piece_length = merkle::BLOCK << shift;
        let (m, root, layer) = torrent(pieces, piece_length);
        let asked_root = if other_root { merkle::sha256(b"x") } else { root };
        let length = 1u32.checked_shl(length_log).unwrap_or(length_log);
        let index = index_slot.saturating_mul(length.max(1));
        let (answer, largest) = largest_allocation(|| {
            m.serve_hashes(&asked_root, base, index, length, proof_layers)
        });
        prop_assert!(largest <= 64 * 1024, "allocated {largest} for one answer");
        let height = pieces.next_power_of_two().trailing_zeros();
        let valid = !other_root
            && base == shift
            && length.is_power_of_two()
            && length <= MAX_REQUEST_HASHES
            && index % length == 0
            && index as u64 + length as u64 <= 1 << height
            && proof_layers < height;
        prop_assert_eq!(answer.is_some(), valid, "{} {} {} {}", base, index, length, proof_layers);
        let Some(hashes) = answer else { return Ok(()) };
        let uncles = (proof_layers + 1).saturating_sub(length.trailing_zeros());
        prop_assert_eq!(hashes.len() as u32, length + uncles);
        let pad = merkle::pad_hash(piece_length / merkle::BLOCK);
        for (i, h) in hashes[..length as usize].iter().enumerate() {
            prop_assert_eq!(*h, *layer.get(index as usize + i).unwrap_or(&pad));
        }
        let node = proven_node(&hashes[..length as usize], index, &hashes[length as usize..]);
        if length.trailing_zeros() + uncles == height {
            prop_assert_eq!(node, Some(root));
        }
    }
}
