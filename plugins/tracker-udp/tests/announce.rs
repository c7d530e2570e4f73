//! Announces against a real opentracker (BEP 15), and against fake UDP servers for the faults a
//! real tracker does not produce on demand.

use std::net::UdpSocket;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rivulet_core::plugin::{AnnounceRequest, Tracker, TrackerError};
use rivulet_tests::tracker::Tracker as Opentracker;
use rivulet_tests::tracker_client::{announce_request, second_peer_is_given_the_first};
use rivulet_tests::workdir::WorkDir;
use rivulet_tracker_udp::UdpTracker;

const HASH: [u8; 20] = *b"\x02rivulet-udp-test\xfe\x00\x01";

fn request(peer_id: &[u8; 20], port: u16, timeout: Duration) -> AnnounceRequest {
    announce_request(HASH, peer_id, port, timeout)
}

#[test]
fn real_opentracker_lists_the_first_peer_to_the_second() {
    let work = WorkDir::new("udp-tracker-real");
    let ot = Opentracker::start(work.path(), &[HASH]);
    let t = UdpTracker::open(&ot.udp_url()).unwrap();
    // opentracker answers an unlisted torrent over UDP with a bare 8-byte announce header.
    let e = second_peer_is_given_the_first(&t, HASH, 7101);
    assert!(matches!(e, TrackerError::BadReply(_)), "{e}");
}

/// What a fake tracker saw.
#[derive(Debug, Default)]
struct Seen {
    connects: usize,
    announces: Vec<Vec<u8>>,
}

/// Runs `answer` for each datagram until 3 s of silence; `answer` returns the datagrams to
/// send back, each from the tracker socket (`true`) or from a stranger's socket (`false`).
fn fake_tracker(
    mut answer: impl FnMut(&[u8]) -> Vec<(bool, Vec<u8>)> + Send + 'static,
) -> (String, mpsc::Receiver<Seen>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let url = format!("udp://{}/announce?passkey=k1", sock.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut seen = Seen::default();
        let mut buf = [0; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let dgram = &buf[..n];
            if dgram.len() >= 16 && dgram[8..12] == [0, 0, 0, 0] {
                seen.connects += 1;
            } else {
                seen.announces.push(dgram.to_vec());
            }
            for (own, reply) in answer(dgram) {
                let s = if own { &sock } else { &stranger };
                let _ = s.send_to(&reply, from);
            }
            let _ = tx.send(std::mem::take(&mut seen));
        }
    });
    (url, rx)
}

fn total(rx: &mpsc::Receiver<Seen>) -> Seen {
    let mut all = Seen::default();
    while let Ok(s) = rx.recv_timeout(Duration::from_millis(200)) {
        all.connects += s.connects;
        all.announces.extend(s.announces);
    }
    all
}

fn txid(d: &[u8]) -> [u8; 4] {
    [d[12], d[13], d[14], d[15]]
}

const CONNECTION: u64 = 0x1122334455667788;

fn connect_reply(tx: [u8; 4], id: u64) -> Vec<u8> {
    let mut r = vec![0, 0, 0, 0];
    r.extend(tx);
    r.extend(id.to_be_bytes());
    r
}

fn announce_reply(tx: [u8; 4], peers: &[u8]) -> Vec<u8> {
    let mut r = vec![0, 0, 0, 1];
    r.extend(tx);
    r.extend([0, 0, 0, 60, 0, 0, 0, 4, 0, 0, 0, 5]);
    r.extend(peers);
    r
}

/// Answers connects and announces correctly, after some noise.
fn honest(d: &[u8]) -> Vec<(bool, Vec<u8>)> {
    if d[8..12] == [0, 0, 0, 0] {
        let tx = [d[12], d[13], d[14], d[15]];
        let mut wrong = tx;
        wrong[0] ^= 0xff;
        // Only the last one is the tracker's answer: any other would put a wrong id in the
        // announce.
        vec![
            (true, connect_reply(wrong, 1)),
            (false, connect_reply(tx, 2)),
            (true, vec![1, 2, 3]),
            (true, connect_reply(tx, CONNECTION)),
        ]
    } else {
        let tx = txid(d);
        let mut bogus = announce_reply(tx, &[1, 1, 1, 1, 0, 1]);
        bogus[4] ^= 0xff;
        vec![
            (true, bogus),
            (false, announce_reply(tx, &[6, 6, 6, 6, 0, 6])),
            (true, announce_reply(tx, &[10, 0, 0, 1, 0x1a, 0xe1])),
        ]
    }
}

#[test]
fn ignores_wrong_transactions_and_strangers_and_reuses_the_connection() {
    let (url, rx) = fake_tracker(honest);
    let t = UdpTracker::open(&url).unwrap();
    for _ in 0..2 {
        let r = t
            .announce(&request(
                b"-RV0001-dddddddddddd",
                6881,
                Duration::from_secs(5),
            ))
            .unwrap();
        assert_eq!(r.peers, vec!["10.0.0.1:6881".parse().unwrap()]);
        assert_eq!((r.leechers, r.seeders), (Some(4), Some(5)));
    }
    let seen = total(&rx);
    assert_eq!(seen.connects, 1, "connection id not reused");
    assert_eq!(seen.announces.len(), 2);
    let a = &seen.announces[0];
    assert_eq!(&a[0..8], &CONNECTION.to_be_bytes());
    assert_eq!(&a[98..], b"\x02\x14/announce?passkey=k1");
}

#[test]
fn an_error_reply_is_a_failure() {
    let (url, _rx) = fake_tracker(|d| {
        let mut r = vec![0, 0, 0, 3];
        r.extend(&d[12..16]);
        r.extend(b"unregistered torrent");
        vec![(true, r)]
    });
    let t = UdpTracker::open(&url).unwrap();
    let e = t
        .announce(&request(
            b"-RV0001-eeeeeeeeeeee",
            6881,
            Duration::from_secs(5),
        ))
        .unwrap_err();
    assert!(
        matches!(&e, TrackerError::Failure(m) if m == "unregistered torrent"),
        "{e}"
    );
}

#[test]
fn a_bad_peer_list_is_a_bad_reply() {
    let (url, _rx) = fake_tracker(|d| {
        if d[8..12] == [0, 0, 0, 0] {
            vec![(true, connect_reply(txid(d), CONNECTION))]
        } else {
            vec![(true, announce_reply(txid(d), &[1, 2, 3, 4, 5]))]
        }
    });
    let t = UdpTracker::open(&url).unwrap();
    let e = t
        .announce(&request(
            b"-RV0001-ffffffffffff",
            6881,
            Duration::from_secs(5),
        ))
        .unwrap_err();
    assert!(matches!(e, TrackerError::BadReply(_)), "{e}");
}

#[test]
fn silence_times_out_in_time_after_retransmitting() {
    let (url, rx) = fake_tracker(|_| Vec::new());
    let t = UdpTracker::open(&url).unwrap();
    let timeout = Duration::from_millis(1200);
    let start = Instant::now();
    let e = t
        .announce(&request(b"-RV0001-gggggggggggg", 6881, timeout))
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(e, TrackerError::Timeout), "{e}");
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(500),
        "took {took:?}"
    );
    // Base 300 ms: sends at 0, 300 and 900 ms.
    assert_eq!(total(&rx).connects, 3);
}

#[test]
fn urls_that_are_not_ipv4_udp_are_refused() {
    for bad in [
        "udp://[::1]:6969/announce",
        "udp://127.0.0.1/announce",
        "http://127.0.0.1:1/a",
        "udp:/x",
    ] {
        assert!(
            matches!(UdpTracker::open(bad), Err(TrackerError::Unsupported(_))),
            "{bad} accepted"
        );
    }
    let e = UdpTracker::open("udp://[::1]:6969").err().unwrap();
    assert!(e.to_string().contains("IPv6"), "{e}");
}

#[test]
fn an_announce_leaves_from_its_local_address_or_fails_naming_it() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = UdpTracker::open(&format!("udp://{}", sock.local_addr().unwrap())).unwrap();
    let mut req = request(b"-RV0001-gggggggggggg", 6881, Duration::from_millis(300));
    req.local_ip = Some("127.0.0.3".parse().unwrap());
    // Nobody answers: only where the connect request came from matters.
    assert!(matches!(t.announce(&req), Err(TrackerError::Timeout)));
    let mut buf = [0; 64];
    let (_, from) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(from.ip().to_string(), "127.0.0.3");

    req.local_ip = Some("192.0.2.1".parse().unwrap());
    let e = t.announce(&req).unwrap_err();
    assert!(
        matches!(e, TrackerError::Unreachable(ref m) if m.contains("192.0.2.1")),
        "{e}"
    );
    req.local_ip = Some("::1".parse().unwrap());
    let e = t.announce(&req).unwrap_err();
    assert!(
        matches!(e, TrackerError::Unsupported(ref m) if m.contains("IPv6")),
        "{e}"
    );
}
