//! Generated-input tests of the magnet link parser: generated links read back as written,
//! random and mutated text never panics, and every refusal is one line.
//!
//! Cases per property: RIVULET_FUZZ_CASES (see rivulet-fuzz-support).

use std::net::SocketAddr;

use proptest::prelude::*;
use rivulet_core::metainfo::{InfoHash, Magnet, MagnetError};
use rivulet_fuzz_support::{config, mutate};

fn magnet() -> impl Strategy<Value = Magnet> {
    (
        any::<[u8; 20]>(),
        proptest::option::of("\\PC{1,20}"),
        proptest::collection::vec(
            "(http|udp)://[a-z0-9.&=%+ ]{1,20}(:[0-9]{1,5})?/announce",
            0..4,
        ),
        proptest::collection::vec(any::<(u32, u16)>(), 0..4),
    )
        .prop_map(|(hash, name, mut trackers, peers)| {
            trackers.dedup();
            let mut peers: Vec<SocketAddr> = peers
                .into_iter()
                .map(|(ip, port)| SocketAddr::from((ip.to_be_bytes(), port)))
                .collect();
            peers.dedup();
            Magnet {
                info_hash: InfoHash(hash),
                info_hash_v2: None,
                name,
                trackers,
                peers,
            }
        })
}

fn check_error(e: &MagnetError) -> Result<(), TestCaseError> {
    let text = e.to_string();
    prop_assert!(!text.contains('\n'), "error spans lines: {text:?}");
    prop_assert!(text.len() < 300, "error too long: {text:?}");
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_magnet_round_trip(m in magnet()) {
        let mut m = m;
        let mut seen = Vec::new();
        m.trackers.retain(|t| !seen.contains(t) && { seen.push(t.clone()); true });
        prop_assert_eq!(Magnet::parse(&m.to_uri()).expect("own link parses"), m);
    }

    #[test]
    fn fuzz_magnet_random_text(s in "magnet:\\?[\\PC&=%:.]{0,120}") {
        if let Err(e) = Magnet::parse(&s) {
            check_error(&e)?;
        }
    }

    #[test]
    fn fuzz_magnet_mutated((m, edits) in (magnet(), mutate::edits())) {
        let bytes = mutate::apply(m.to_uri().as_bytes(), &edits);
        let s = String::from_utf8_lossy(&bytes);
        match Magnet::parse(&s) {
            Ok(parsed) => prop_assert!(parsed.to_uri().starts_with("magnet:?xt=urn:btih:")),
            Err(e) => check_error(&e)?,
        }
    }
}
