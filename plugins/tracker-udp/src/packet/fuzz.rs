//! Generated-input tests of the BEP 15 reply parsers (`connection_id`, `announce_response`,
//! `transaction_of`): valid replies built from a strategy parse to what they carry; random
//! datagrams and structured mutations of valid ones never panic.
//!
//! Cases per property: RIVULET_FUZZ_CASES (see rivulet-fuzz-support).

use proptest::prelude::*;
use rivulet_fuzz_support::budget::{BudgetAlloc, largest_allocation};
use rivulet_fuzz_support::{config, mutate};

use super::*;

#[global_allocator]
static ALLOC: BudgetAlloc = BudgetAlloc;

/// Runs every reply parser on `datagram`; checks what any outcome must satisfy.
fn parse_all(datagram: &[u8]) {
    let ((tx, conn, ann), largest) = largest_allocation(|| {
        (
            transaction_of(datagram),
            connection_id(datagram),
            announce_response(datagram),
        )
    });
    // A datagram is at most 64 KiB; the peer list is the only thing sized by it.
    assert!(
        largest <= 64 * 1024 + 8 * datagram.len(),
        "allocated {largest}"
    );
    assert_eq!(tx.is_some(), datagram.len() >= 8);
    let errors = [
        conn.err().map(|e| e.to_string()),
        ann.as_ref().err().map(|e| e.to_string()),
    ];
    for e in errors.into_iter().flatten() {
        assert!(
            !e.chars().any(char::is_control),
            "error is not one printable line: {e:?}"
        );
    }
    if let Ok(a) = ann {
        assert_eq!(&datagram[..4], &ANNOUNCE.to_be_bytes());
        assert!(a.peers.len() <= MAX_PEERS && a.peers.iter().all(|p| p.port() != 0));
    }
}

#[derive(Clone, Debug)]
struct Announce {
    transaction: u32,
    interval: u32,
    leechers: u32,
    seeders: u32,
    peers: Vec<SocketAddrV4>,
}

impl Announce {
    fn datagram(&self) -> Vec<u8> {
        let mut d = Vec::new();
        for w in [
            ANNOUNCE,
            self.transaction,
            self.interval,
            self.leechers,
            self.seeders,
        ] {
            d.extend(w.to_be_bytes());
        }
        for p in &self.peers {
            d.extend(p.ip().octets());
            d.extend(p.port().to_be_bytes());
        }
        d
    }
}

fn announce_reply() -> impl Strategy<Value = Announce> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        proptest::collection::vec(
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddrV4::new(ip.into(), port)),
            0..100,
        ),
    )
        .prop_map(
            |(transaction, interval, leechers, seeders, peers)| Announce {
                transaction,
                interval,
                leechers,
                seeders,
                peers,
            },
        )
}

fn connect_reply() -> impl Strategy<Value = (u32, u64)> {
    (any::<u32>(), any::<u64>())
}

fn connect_datagram((transaction, id): (u32, u64)) -> Vec<u8> {
    let mut d = CONNECT.to_be_bytes().to_vec();
    d.extend(transaction.to_be_bytes());
    d.extend(id.to_be_bytes());
    d
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_udp_announce_valid(r in announce_reply()) {
        let d = r.datagram();
        parse_all(&d);
        let a = announce_response(&d).expect("valid reply parses");
        prop_assert_eq!(transaction_of(&d), Some(r.transaction));
        let want: Vec<SocketAddr> = r.peers.iter().filter(|p| p.port() != 0).map(|&p| p.into()).collect();
        prop_assert_eq!(a.peers, want);
        prop_assert_eq!(a.interval.as_secs(), u64::from(r.interval));
        prop_assert_eq!((a.leechers, a.seeders), (Some(r.leechers), Some(r.seeders)));
    }

    #[test]
    fn fuzz_udp_connect_valid(c in connect_reply()) {
        let d = connect_datagram(c);
        parse_all(&d);
        prop_assert_eq!(connection_id(&d).expect("valid reply parses"), c.1);
        prop_assert_eq!(transaction_of(&d), Some(c.0));
    }

    #[test]
    fn fuzz_udp_error_reply(tx in any::<u32>(), text in proptest::collection::vec(any::<u8>(), 0..100)) {
        let mut d = ERROR.to_be_bytes().to_vec();
        d.extend(tx.to_be_bytes());
        d.extend(&text);
        parse_all(&d);
        let failure = matches!(announce_response(&d), Err(TrackerError::Failure(m)) if !m.chars().any(char::is_control));
        prop_assert!(failure);
    }

    #[test]
    fn fuzz_udp_random_datagram(d in proptest::collection::vec(any::<u8>(), 0..200)) {
        parse_all(&d);
    }

    #[test]
    fn fuzz_udp_mutated_valid(
        (d, edits) in (
            prop_oneof![
                announce_reply().prop_map(|r| r.datagram()),
                connect_reply().prop_map(connect_datagram),
            ],
            mutate::edits(),
        )
    ) {
        parse_all(&mutate::apply(&d, &edits));
    }
}
