//! Generated-input tests of the peer wire parsers: `Message::read` and `Message::decode`,
//! `Handshake::decode`/`read`, `Bitfield::from_wire`, and the BEP 10 extension handshake and
//! BEP 9 ut_metadata messages, the fast extension's (BEP 6) and BEP 52's hash request, hashes
//! and reject. Round trips for every message, random
//! and mutated byte streams, and length prefixes up to 4 GiB that must be refused before
//! anything of that size is allocated.
//!
//! Cases per property: RIVULET_FUZZ_CASES (see rivulet-fuzz-support).

use proptest::prelude::*;
use rivulet_core::bitfield::{Bitfield, BitfieldError};
use rivulet_core::wire::extension::MAX_METADATA;
use rivulet_core::wire::handshake::HANDSHAKE_LEN;
use rivulet_core::wire::ut_metadata::METADATA_PIECE;
use rivulet_core::wire::{
    BlockRequest, ExtHandshake, Handshake, HandshakeError, HashRequest, Message, MessageError,
    MetadataMsg,
};
use rivulet_fuzz_support::budget::{BudgetAlloc, largest_allocation};
use rivulet_fuzz_support::{config, mutate};

#[global_allocator]
static ALLOC: BudgetAlloc = BudgetAlloc;

/// What the connection reader allows for a 1024-piece torrent: a served block.
const MAX_LEN: u32 = 128 * 1024 + 9;
/// What the executor and the parser's fixed buffers may allocate besides the message body.
const SLACK: usize = 64 * 1024;

fn read(wire: &[u8], max_len: u32) -> (Result<Message, MessageError>, usize) {
    largest_allocation(|| rivulet_core::rt::block_on(Message::read(&mut &wire[..], max_len)))
}

fn request() -> impl Strategy<Value = BlockRequest> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(piece, offset, len)| BlockRequest {
        piece,
        offset,
        len,
    })
}

fn message() -> impl Strategy<Value = Message> {
    let data = proptest::collection::vec(any::<u8>(), 0..600);
    prop_oneof![
        Just(Message::KeepAlive),
        Just(Message::Choke),
        Just(Message::Unchoke),
        Just(Message::Interested),
        Just(Message::NotInterested),
        any::<u32>().prop_map(Message::Have),
        data.clone().prop_map(Message::Bitfield),
        request().prop_map(Message::Request),
        (any::<u32>(), any::<u32>(), data).prop_map(|(piece, offset, data)| Message::Piece {
            piece,
            offset,
            data
        }),
        request().prop_map(Message::Cancel),
        any::<u16>().prop_map(Message::Port),
        any::<u32>().prop_map(Message::Suggest),
        Just(Message::HaveAll),
        Just(Message::HaveNone),
        request().prop_map(Message::Reject),
        any::<u32>().prop_map(Message::AllowedFast),
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..600))
            .prop_map(|(id, payload)| Message::Extended { id, payload }),
        hash_request().prop_map(Message::HashRequest),
        hash_request().prop_map(Message::HashReject),
        (
            hash_request(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..20)
        )
            .prop_map(|(req, hashes)| Message::Hashes { req, hashes }),
        // Ids we do not speak carry no payload in our encoding; 0..=9, 13..=17 (BEP 6), 20
        // (BEP 10), 21 to 23 (BEP 52) are taken.
        (10u8..=255)
            .prop_filter("spoken", |id| {
                !(20..=23).contains(id) && !(13..=17).contains(id)
            })
            .prop_map(Message::Unknown),
    ]
}

fn hash_request() -> impl Strategy<Value = HashRequest> {
    (any::<[u8; 32]>(), any::<[u32; 4]>()).prop_map(|(pieces_root, n)| HashRequest {
        pieces_root,
        base_layer: n[0],
        index: n[1],
        length: n[2],
        proof_layers: n[3],
    })
}

fn handshake() -> impl Strategy<Value = Handshake> {
    (any::<[u8; 8]>(), any::<[u8; 20]>(), any::<[u8; 20]>()).prop_map(
        |(reserved, info_hash, peer_id)| Handshake {
            reserved,
            info_hash,
            peer_id,
        },
    )
}

/// A stream of a few valid messages, for mutation.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(message(), 1..5)
        .prop_map(|ms| ms.iter().flat_map(Message::encode).collect())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_wire_message_round_trip(m in message()) {
        let wire = m.encode();
        prop_assert_eq!(u32::from_be_bytes(wire[..4].try_into().unwrap()) as usize, wire.len() - 4);
        let (got, _) = read(&wire, MAX_LEN);
        prop_assert_eq!(got.expect("own encoding reads back"), m.clone());
        prop_assert_eq!(Message::decode(wire[4..].to_vec()).expect("own body decodes"), m);
    }

    #[test]
    fn fuzz_wire_decode_random_body(body in proptest::collection::vec(any::<u8>(), 0..64)) {
        match Message::decode(body.clone()) {
            // Whatever was accepted encodes back to the same body (an unknown id's payload
            // is skipped, so only its id comes back).
            Ok(Message::Unknown(id)) => prop_assert_eq!(body[0], id),
            Ok(m) => prop_assert_eq!(&m.encode()[4..], body.as_slice()),
            Err(e) => {
                let bad_length = matches!(e, MessageError::BadLength { .. });
                prop_assert!(bad_length, "unexpected error {}", e);
            }
        }
    }

    #[test]
    fn fuzz_wire_read_random_stream(
        wire in proptest::collection::vec(any::<u8>(), 0..64),
        max_len in prop_oneof![Just(MAX_LEN), 0u32..(1 << 20)],
    ) {
        let (r, largest) = read(&wire, max_len);
        prop_assert!(largest <= max_len as usize + SLACK, "allocated {largest} for a cap of {max_len}");
        if let Err(MessageError::TooLong { len, max }) = r {
            prop_assert!(len > max);
            prop_assert!(largest <= SLACK);
        }
    }

    #[test]
    fn fuzz_wire_hashes_body_of_any_length(
        head in any::<[u8; 48]>(),
        tail in proptest::collection::vec(any::<u8>(), 0..200),
        cut in 0usize..48,
    ) {
        let mut body = vec![22];
        body.extend(head);
        body.extend(&tail);
        match Message::decode(body.clone()) {
            Ok(Message::Hashes { hashes, .. }) => {
                prop_assert_eq!(tail.len() % 32, 0);
                prop_assert_eq!(hashes.len(), tail.len() / 32);
                prop_assert_eq!(&Message::decode(body.clone()).unwrap().encode()[4..], body.as_slice());
            }
            other => {
                prop_assert!(tail.len() % 32 != 0, "refused {:?}", other);
                let bad_length = matches!(other, Err(MessageError::BadLength { id: 22, .. }));
                prop_assert!(bad_length);
            }
        }
        // A header cut short is refused as well.
        let short = Message::decode(body[..1 + cut].to_vec());
        let bad_length = matches!(short, Err(MessageError::BadLength { id: 22, .. }));
        prop_assert!(bad_length, "{:?}", short);
    }

    #[test]
    fn fuzz_wire_read_mutated_stream((wire, edits) in (stream(), mutate::edits())) {
        let wire = mutate::apply(&wire, &edits);
        let mut r = &wire[..];
        // Read to the end or the first error, as the connection reader does.
        for _ in 0..64 {
            let (m, largest) = largest_allocation(|| rivulet_core::rt::block_on(Message::read(&mut r, MAX_LEN)));
            prop_assert!(largest <= MAX_LEN as usize + SLACK);
            if m.is_err() {
                break;
            }
        }
    }

    #[test]
    fn fuzz_wire_huge_length_prefix(len in (MAX_LEN + 1)..=u32::MAX, tail in proptest::collection::vec(any::<u8>(), 0..16)) {
        let mut wire = len.to_be_bytes().to_vec();
        wire.extend(tail);
        let (r, largest) = read(&wire, MAX_LEN);
        let refused = matches!(r, Err(MessageError::TooLong { len: l, max: MAX_LEN }) if l == len);
        prop_assert!(refused, "not refused as too long: {:?}", r);
        prop_assert!(largest <= SLACK, "allocated {largest} bytes for a refused length");
    }

    #[test]
    fn fuzz_wire_handshake_round_trip(h in handshake()) {
        let b = h.encode();
        prop_assert_eq!(Handshake::decode(&b).expect("own encoding decodes"), h.clone());
        let read = rivulet_core::rt::block_on(Handshake::read(&mut &b[..])).expect("reads");
        prop_assert_eq!(read, h);
    }

    #[test]
    fn fuzz_wire_handshake_random(b in any::<[u8; HANDSHAKE_LEN]>(), cut in 0usize..HANDSHAKE_LEN) {
        let ok = b[0] == 19 && &b[1..20] == b"BitTorrent protocol";
        match Handshake::decode(&b) {
            Ok(h) => {
                prop_assert!(ok);
                prop_assert_eq!(h.encode(), b);
            }
            Err(e) => {
                prop_assert!(!ok);
                let not_bt = matches!(e, HandshakeError::NotBitTorrent);
                prop_assert!(not_bt, "unexpected error {}", e);
            }
        }
        // A stream that ends early is an I/O error, never a panic or a hang.
        let short = rivulet_core::rt::block_on(Handshake::read(&mut &b[..cut]));
        let io = matches!(short, Err(HandshakeError::Io(_)));
        prop_assert!(io, "short handshake: {:?}", short);
    }

    #[test]
    fn fuzz_wire_handshake_mutated((h, edits) in (handshake(), mutate::edits())) {
        let b = mutate::apply(&h.encode(), &edits);
        let _ = rivulet_core::rt::block_on(Handshake::read(&mut &b[..]));
    }

    #[test]
    fn fuzz_bitfield_round_trip(len in 0u32..5000, picks in proptest::collection::vec(any::<u32>(), 0..64)) {
        let mut b = Bitfield::new(len);
        for p in &picks {
            if len > 0 {
                b.set(p % len);
            }
        }
        let back = Bitfield::from_wire(b.as_bytes(), len).expect("own bitfield is valid");
        prop_assert_eq!(&back, &b);
        let ones: Vec<u32> = back.ones().collect();
        prop_assert_eq!(ones.len() as u32, back.count());
        prop_assert!(ones.iter().all(|&i| i < len && back.get(i)));
    }

    #[test]
    fn fuzz_bitfield_random(bytes in proptest::collection::vec(any::<u8>(), 0..700), len in prop_oneof![0u32..5600, Just(u32::MAX), (u32::MAX - 8)..=u32::MAX]) {
        let want = (len as usize).div_ceil(8);
        match Bitfield::from_wire(&bytes, len) {
            Ok(b) => {
                prop_assert_eq!(bytes.len(), want);
                prop_assert_eq!(b.as_bytes(), bytes.as_slice());
                prop_assert_eq!(b.count(), bytes.iter().map(|x| x.count_ones()).sum::<u32>());
                prop_assert!(!b.get(len));
            }
            Err(BitfieldError::WrongLength { got, want: w, pieces }) => {
                prop_assert_eq!((got, w, pieces), (bytes.len(), want, len));
                prop_assert_ne!(got, w);
            }
            Err(BitfieldError::SpareBits { pieces }) => {
                prop_assert_eq!(pieces, len);
                prop_assert_eq!(bytes.len(), want);
            }
        }
    }
}

#[test]
fn four_gib_length_prefix_is_refused_before_allocating() {
    let (r, largest) = read(&[0xff, 0xff, 0xff, 0xff, 7, 0, 0], MAX_LEN);
    assert!(matches!(
        r,
        Err(MessageError::TooLong { len: u32::MAX, .. })
    ));
    assert!(largest <= SLACK, "allocated {largest} bytes");
}

fn ut_metadata_msg() -> impl Strategy<Value = MetadataMsg> {
    prop_oneof![
        (0u32..1024).prop_map(|piece| MetadataMsg::Request { piece }),
        (0u32..1024).prop_map(|piece| MetadataMsg::Reject { piece }),
        (
            0u32..1024,
            1u64..=MAX_METADATA,
            proptest::collection::vec(any::<u8>(), 0..=METADATA_PIECE)
        )
            .prop_map(|(piece, total_size, data)| MetadataMsg::Data {
                piece,
                total_size,
                data
            }),
    ]
}

fn ext_handshake() -> impl Strategy<Value = ExtHandshake> {
    (
        proptest::option::of(1u8..=255),
        proptest::option::of(1u64..=MAX_METADATA),
        proptest::option::of("[ -~]{0,30}"),
        proptest::option::of(1u8..=255),
        proptest::option::of(1u16..),
    )
        .prop_map(
            |(ut_metadata, metadata_size, client, ut_pex, listen_port)| ExtHandshake {
                ut_metadata,
                ut_pex,
                listen_port,
                metadata_size,
                client,
            },
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_ut_metadata_round_trip(m in ut_metadata_msg()) {
        prop_assert_eq!(MetadataMsg::decode(&m.encode()).expect("own message decodes"), m);
    }

    #[test]
    fn fuzz_ut_metadata_mutated((m, edits) in (ut_metadata_msg(), mutate::edits())) {
        let wire = mutate::apply(&m.encode(), &edits);
        let (r, largest) = largest_allocation(|| MetadataMsg::decode(&wire));
        prop_assert!(largest <= wire.len() + SLACK, "allocated {largest}");
        if let Ok(MetadataMsg::Data { data, total_size, .. }) = r {
            prop_assert!(data.len() <= METADATA_PIECE);
            prop_assert!(total_size > 0 && total_size <= MAX_METADATA);
        }
    }

    #[test]
    fn fuzz_ext_handshake_round_trip(h in ext_handshake()) {
        prop_assert_eq!(ExtHandshake::decode(&h.encode()).expect("own handshake decodes"), h);
    }

    #[test]
    fn fuzz_ext_handshake_mutated((h, edits) in (ext_handshake(), mutate::edits())) {
        let wire = mutate::apply(&h.encode(), &edits);
        let (r, largest) = largest_allocation(|| ExtHandshake::decode(&wire));
        prop_assert!(largest <= wire.len() + SLACK, "allocated {largest}");
        if let Ok(h) = r {
            prop_assert!(h.metadata_size.is_none_or(|s| s > 0 && s <= MAX_METADATA));
            prop_assert!(h.ut_metadata != Some(0));
            prop_assert!(h.ut_pex != Some(0));
            prop_assert!(h.listen_port != Some(0));
        }
    }

    #[test]
    fn fuzz_extension_payload_random(p in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = ExtHandshake::decode(&p);
        let _ = MetadataMsg::decode(&p);
    }
}
