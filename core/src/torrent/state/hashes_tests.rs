//! BEP 52 hash requests in the torrent core: answered from a v2 torrent's piece layers with a
//! proof, refused when invalid, and held to a budget so a flood costs little.

use super::tests::{Remote, connect_with, send, torrent, torrent_of};
use super::*;
use crate::metainfo::merkle::{self, Hash};
use crate::metainfo::piece_tree::proven_node;
use crate::wire::HashRequest;

/// A v2-only torrent of one file of `pieces` 16 KiB pieces, with its piece layer; its root.
fn v2_meta(pieces: u32) -> (Arc<Metainfo>, Hash) {
    let data: Vec<u8> = (0..pieces as u64 * merkle::BLOCK)
        .map(|i| (i / 3) as u8)
        .collect();
    let leaves: Vec<Hash> = data
        .chunks(merkle::BLOCK as usize)
        .map(merkle::sha256)
        .collect();
    let root = merkle::root(&leaves, [0; 32]);
    let mut t = format!(
        "d4:infod9:file treed1:fd0:d6:lengthi{}e11:pieces root32:",
        data.len()
    )
    .into_bytes();
    t.extend(root);
    t.extend(b"eee12:meta versioni2e4:name1:f12:piece lengthi16384ee12:piece layersd32:");
    t.extend(root);
    t.extend(format!("{}:", 32 * leaves.len()).bytes());
    leaves.iter().for_each(|l| t.extend(l));
    t.extend(b"ee");
    (Arc::new(Metainfo::from_bytes(&t).unwrap()), root)
}

fn ask(root: Hash, index: u32, length: u32, proof_layers: u32) -> HashRequest {
    HashRequest {
        pieces_root: root,
        base_layer: 0,
        index,
        length,
        proof_layers,
    }
}

fn answers(p: &Remote) -> Vec<Message> {
    p.sent()
        .into_iter()
        .filter(|m| matches!(m, Message::Hashes { .. } | Message::HashReject(_)))
        .collect()
}

#[test]
fn a_hash_request_is_answered_with_hashes_that_prove_against_the_root() {
    let (meta, root) = v2_meta(20);
    let mut s = torrent_of(meta, Bitfield::full(20));
    let p = connect_with(&mut s, 1, None, true);
    let r = ask(root, 16, 16, 4);
    send(&mut s, &p, Message::HashRequest(r)).0.unwrap();
    let got = answers(&p);
    let [Message::Hashes { req, hashes }] = got.as_slice() else {
        panic!("{got:?}");
    };
    assert_eq!(*req, r);
    assert_eq!(hashes.len(), 17, "16 hashes and the uncle of their subtree");
    assert_eq!(proven_node(&hashes[..16], 16, &hashes[16..]), Some(root));
    // Asking below the piece layer, or for what does not exist, is refused.
    let bad = HashRequest { base_layer: 1, ..r };
    send(&mut s, &p, Message::HashRequest(bad)).0.unwrap();
    assert_eq!(answers(&p), [Message::HashReject(bad)]);
    // A v1 torrent has no layers.
    let mut v1 = torrent(4, Bitfield::full(4));
    let p = connect_with(&mut v1, 2, None, true);
    send(&mut v1, &p, Message::HashRequest(r)).0.unwrap();
    assert_eq!(answers(&p), [Message::HashReject(r)]);
}

#[test]
fn a_hash_request_flood_is_rejected_past_the_budget_without_hashing() {
    let (meta, root) = v2_meta(20);
    let mut s = torrent_of(meta, Bitfield::full(20));
    let p = connect_with(&mut s, 1, None, true);
    let (mut served, mut rejected) = (0, 0);
    for _ in 0..1000 {
        send(&mut s, &p, Message::HashRequest(ask(root, 0, 32, 4)))
            .0
            .unwrap();
        for m in answers(&p) {
            match m {
                Message::Hashes { .. } => served += 1,
                _ => rejected += 1,
            }
        }
    }
    assert!(served <= 64 + 32, "{served} answered in a burst");
    assert_eq!(served + rejected, 1000, "every request gets one answer");
}
