//! Generated-input tests of the BEP 11 ut_pex parser: generated messages read back as written,
//! random, mutated and oversized payloads never panic, allocate no more than the payload's
//! size, and never yield more than the per-message caps.
//!
//! Cases per property: RIVULET_FUZZ_CASES (see rivulet-fuzz-support).

use std::net::SocketAddr;

use proptest::prelude::*;
use rivulet_core::wire::pex::{MAX_ENTRIES, MAX_PAYLOAD};
use rivulet_core::wire::{PexError, PexMsg, PexPeer};
use rivulet_fuzz_support::budget::{BudgetAlloc, largest_allocation};
use rivulet_fuzz_support::{config, mutate};

#[global_allocator]
static ALLOC: BudgetAlloc = BudgetAlloc;

/// What serde_bencode and the result may allocate besides copies of the payload.
const SLACK: usize = 64 * 1024;

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        any::<([u8; 4], u16)>().prop_map(SocketAddr::from),
        any::<([u8; 16], u16)>().prop_map(SocketAddr::from),
    ]
}

/// A message as we encode it: IPv4 entries come out before IPv6 ones, so generate them so.
fn message() -> impl Strategy<Value = PexMsg> {
    let peers = proptest::collection::vec((addr(), any::<u8>()), 0..60);
    let dropped = proptest::collection::vec(addr(), 0..60);
    (peers, dropped).prop_map(|(peers, dropped)| {
        let mut added: Vec<PexPeer> = peers
            .into_iter()
            .map(|(addr, flags)| PexPeer { addr, flags })
            .collect();
        added.sort_by_key(|p| p.addr.is_ipv6());
        let mut dropped = dropped;
        dropped.sort_by_key(|a| a.is_ipv6());
        PexMsg { added, dropped }
    })
}

fn check(payload: &[u8]) -> Result<(), TestCaseError> {
    let (r, largest) = largest_allocation(|| PexMsg::decode(payload));
    prop_assert!(largest <= payload.len() + SLACK, "allocated {largest}");
    match r {
        Ok(m) => {
            prop_assert!(m.added.len() <= MAX_ENTRIES);
            prop_assert!(m.dropped.len() <= MAX_ENTRIES);
        }
        Err(e) => {
            let text = e.to_string();
            prop_assert!(!text.contains('\n') && text.len() < 300, "{text:?}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_pex_round_trip(m in message()) {
        prop_assert_eq!(PexMsg::decode(&m.encode()).expect("own message decodes"), m);
    }

    #[test]
    fn fuzz_pex_mutated((m, edits) in (message(), mutate::edits())) {
        check(&mutate::apply(&m.encode(), &edits))?;
    }

    #[test]
    fn fuzz_pex_random(p in proptest::collection::vec(any::<u8>(), 0..256)) {
        check(&p)?;
    }

    #[test]
    fn fuzz_pex_random_dictionary(
        keys in proptest::collection::vec(
            (prop_oneof![
                Just("added"), Just("added.f"), Just("added6"), Just("added6.f"),
                Just("dropped"), Just("dropped6"), Just("x"),
            ], proptest::collection::vec(any::<u8>(), 0..200)),
            0..6,
        )
    ) {
        let mut keys = keys;
        keys.sort_by(|a, b| a.0.cmp(b.0));
        keys.dedup_by(|a, b| a.0 == b.0);
        let mut p = b"d".to_vec();
        for (k, v) in &keys {
            p.extend_from_slice(format!("{}:{}{}:", k.len(), k, v.len()).as_bytes());
            p.extend_from_slice(v);
        }
        p.push(b'e');
        check(&p)?;
    }

    #[test]
    fn fuzz_pex_oversized_is_refused_unread(extra in 1usize..100_000, fill in any::<u8>()) {
        let p = vec![fill; MAX_PAYLOAD + extra];
        let (r, largest) = largest_allocation(|| PexMsg::decode(&p));
        prop_assert_eq!(r, Err(PexError::TooLong(MAX_PAYLOAD + extra)));
        prop_assert!(largest < 1024, "allocated {largest}");
    }
}

#[test]
fn a_list_far_past_the_cap_is_cut() {
    let many = PexMsg {
        added: (0..1000u32)
            .map(|i| PexPeer {
                addr: SocketAddr::from((i.to_be_bytes(), 1)),
                flags: 0,
            })
            .collect(),
        dropped: vec![],
    };
    let m = PexMsg::decode(&many.encode()).expect("decodes");
    assert_eq!(m.added.len(), MAX_ENTRIES);
}
