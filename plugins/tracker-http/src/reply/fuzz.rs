//! Generated-input tests of the announce reply parser: valid replies built from a strategy
//! parse to what they say; random bytes, structured mutations of valid replies and hostile
//! shapes (huge lengths, deep nesting) never panic and never allocate what a length claims.
//!
//! Cases per property: RIVULET_FUZZ_CASES (see rivulet-fuzz-support).

use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;
use rivulet_fuzz_support::budget::{BudgetAlloc, largest_allocation};
use rivulet_fuzz_support::{config, mutate};

use super::*;

#[global_allocator]
static ALLOC: BudgetAlloc = BudgetAlloc;

/// Parses `body` and checks what every outcome must satisfy.
fn parse_checked(body: &[u8]) -> Result<AnnounceResponse, TrackerError> {
    let (r, largest) = largest_allocation(|| parse(body));
    assert!(
        largest <= 64 * 1024 + 4 * body.len(),
        "parsing {} bytes allocated {largest} at once",
        body.len()
    );
    match &r {
        Ok(a) => {
            assert!(a.peers.len() <= MAX_PEERS);
            assert!(a.peers.iter().all(|p| p.port() != 0));
            assert!(a.warning.as_ref().is_none_or(|w| !w.contains('\n')));
        }
        Err(e) => assert!(
            !e.to_string().chars().any(char::is_control),
            "error is not one printable line: {e:?}"
        ),
    }
    r
}

fn s(b: &[u8]) -> Vec<u8> {
    let mut v = format!("{}:", b.len()).into_bytes();
    v.extend(b);
    v
}

fn i(n: i64) -> Vec<u8> {
    format!("i{n}e").into_bytes()
}

/// A valid reply as (body, expected peers, interval, min interval, complete, incomplete).
#[derive(Clone, Debug)]
struct Reply {
    body: Vec<u8>,
    peers: Vec<SocketAddr>,
    interval: Option<i64>,
    min_interval: Option<i64>,
    complete: Option<i64>,
    incomplete: Option<i64>,
    warning: Option<String>,
}

fn peer() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u16; 8]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    ]
}

fn valid_reply() -> impl Strategy<Value = Reply> {
    (
        proptest::collection::vec(peer(), 0..40),
        any::<bool>(),
        proptest::option::of(0i64..=i64::MAX),
        proptest::option::of(0i64..=i64::MAX),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<i64>()),
        proptest::option::of("[ -~]{0,40}"),
    )
        .prop_map(
            |(peers, dicts, interval, min_interval, complete, incomplete, warning)| {
                // Keys in sorted order, as bencode wants them.
                let mut body = b"d".to_vec();
                if let Some(n) = complete {
                    body.extend(s(b"complete"));
                    body.extend(i(n));
                }
                if let Some(n) = incomplete {
                    body.extend(s(b"incomplete"));
                    body.extend(i(n));
                }
                if let Some(n) = interval {
                    body.extend(s(b"interval"));
                    body.extend(i(n));
                }
                if let Some(n) = min_interval {
                    body.extend(s(b"min interval"));
                    body.extend(i(n));
                }
                let (v4, v6): (Vec<SocketAddr>, Vec<SocketAddr>) =
                    peers.iter().partition(|p| p.is_ipv4());
                let expected: Vec<SocketAddr> = if dicts {
                    body.extend(s(b"peers"));
                    body.push(b'l');
                    for p in &peers {
                        body.extend(b"d");
                        body.extend(s(b"ip"));
                        body.extend(s(p.ip().to_string().as_bytes()));
                        body.extend(s(b"peer id"));
                        body.extend(s(&[7; 20]));
                        body.extend(s(b"port"));
                        body.extend(i(p.port().into()));
                        body.push(b'e');
                    }
                    body.push(b'e');
                    peers.clone()
                } else {
                    body.extend(s(b"peers"));
                    let compact: Vec<u8> = v4
                        .iter()
                        .flat_map(|p| match p.ip() {
                            IpAddr::V4(ip) => {
                                [ip.octets().as_slice(), &p.port().to_be_bytes()].concat()
                            }
                            IpAddr::V6(_) => unreachable!("partitioned"),
                        })
                        .collect();
                    body.extend(s(&compact));
                    body.extend(s(b"peers6"));
                    let compact6: Vec<u8> = v6
                        .iter()
                        .flat_map(|p| match p.ip() {
                            IpAddr::V6(ip) => {
                                [ip.octets().as_slice(), &p.port().to_be_bytes()].concat()
                            }
                            IpAddr::V4(_) => unreachable!("partitioned"),
                        })
                        .collect();
                    body.extend(s(&compact6));
                    v4.iter().chain(&v6).copied().collect()
                };
                if let Some(w) = &warning {
                    body.extend(s(b"warning message"));
                    body.extend(s(w.as_bytes()));
                }
                body.push(b'e');
                Reply {
                    body,
                    peers: expected.into_iter().filter(|p| p.port() != 0).collect(),
                    interval,
                    min_interval,
                    complete,
                    incomplete,
                    warning,
                }
            },
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_http_reply_valid(r in valid_reply()) {
        let a = parse_checked(&r.body).unwrap_or_else(|e| panic!("refused a valid reply: {e}"));
        prop_assert_eq!(&a.peers, &r.peers);
        prop_assert_eq!(a.interval.as_secs(), r.interval.map_or(1800, |n| n as u64));
        prop_assert_eq!(a.min_interval.map(|d| d.as_secs()), r.min_interval.map(|n| n as u64));
        prop_assert_eq!(a.seeders, r.complete.and_then(|n| u32::try_from(n).ok()));
        prop_assert_eq!(a.leechers, r.incomplete.and_then(|n| u32::try_from(n).ok()));
        prop_assert_eq!(a.warning, r.warning);
    }

    #[test]
    fn fuzz_http_reply_random_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_checked(&body);
    }

    #[test]
    fn fuzz_http_reply_mutated((r, edits) in (valid_reply(), mutate::edits())) {
        let _ = parse_checked(&mutate::apply(&r.body, &edits));
    }

    #[test]
    fn fuzz_http_reply_failure(reason in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut body = b"d".to_vec();
        body.extend(s(b"failure reason"));
        body.extend(s(&reason));
        body.push(b'e');
        match parse_checked(&body) {
            Err(TrackerError::Failure(m)) => prop_assert!(!m.chars().any(char::is_control)),
            other => prop_assert!(false, "failure reply parsed as {:?}", other.map(|a| a.peers)),
        }
    }
}

#[test]
fn huge_string_length_is_refused_before_allocating() {
    for len in ["1099511627776", "4294967296", "18446744073709551615"] {
        let body = format!("d8:intervali60e5:peers{len}:abcdefe");
        let r = parse_checked(body.as_bytes());
        assert!(matches!(r, Err(TrackerError::BadReply(_))));
    }
}
