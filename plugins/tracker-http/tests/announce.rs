//! Announces against a real opentracker, and against fake servers for the faults a real
//! tracker does not produce on demand.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rivulet_core::plugin::{AnnounceRequest, Tracker, TrackerError};
use rivulet_tests::tracker::Tracker as Opentracker;
use rivulet_tests::tracker_client::{announce_request, second_peer_is_given_the_first};
use rivulet_tests::workdir::WorkDir;
use rivulet_tracker_http::HttpTracker;

const HASH: [u8; 20] = *b"\x01rivulet-http-test\xfe\x00";

fn request(peer_id: &[u8; 20], port: u16, timeout: Duration) -> AnnounceRequest {
    announce_request(HASH, peer_id, port, timeout)
}

#[test]
fn real_opentracker_lists_the_first_peer_to_the_second() {
    let work = WorkDir::new("http-tracker-real");
    let ot = Opentracker::start(work.path(), &[HASH]);
    let t = HttpTracker::open(&ot.http_url()).unwrap();
    assert_eq!(t.url(), ot.http_url());
    let e = second_peer_is_given_the_first(&t, HASH, 7001);
    assert!(matches!(e, TrackerError::Failure(_)), "{e}");
}

/// Serves one connection: reads the request head, sends it to the test, answers `reply`
/// (or nothing while `hold` is open).
fn fake_server(reply: Option<Vec<u8>>) -> (String, mpsc::Receiver<String>, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/announce?passkey=abc%2F1",
        listener.local_addr().unwrap()
    );
    let (head_tx, head_rx) = mpsc::channel();
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut head = Vec::new();
        let mut byte = [0];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).is_ok_and(|n| n == 1) {
            head.push(byte[0]);
        }
        let _ = head_tx.send(String::from_utf8_lossy(&head).into_owned());
        match reply {
            Some(reply) => {
                let _ = s.write_all(&reply);
            }
            None => {
                let _ = hold_rx.recv_timeout(Duration::from_secs(30));
            }
        }
    });
    (url, head_rx, hold_tx)
}

fn http(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn announce_fake(reply: Option<Vec<u8>>, timeout: Duration) -> (Result<(), TrackerError>, String) {
    let (url, head, _hold) = fake_server(reply);
    let t = HttpTracker::open(&url).unwrap();
    let r = t
        .announce(&request(b"-RV0001-dddddddddddd", 6881, timeout))
        .map(|_| ());
    let head = head
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_default();
    (r, head)
}

#[test]
fn query_keeps_the_passkey_and_encodes_bytes() {
    let body = b"d8:intervali60e5:peers6:\x7f\x00\x00\x01\x1a\xe1e";
    let (r, head) = announce_fake(
        Some(http("200 OK", "text/plain", body)),
        Duration::from_secs(5),
    );
    r.unwrap();
    let line = head.lines().next().unwrap_or_default();
    assert!(
        line.starts_with("GET /announce?passkey=abc%2F1&info_hash=%01rivulet%2Dhttp%2Dtest%FE%00&peer_id=%2DRV0001%2Ddddd"),
        "{line}"
    );
    assert!(line.contains("&event=started"), "{line}");
}

#[test]
fn garbage_is_a_bad_reply() {
    let (r, _) = announce_fake(
        Some(http("200 OK", "text/plain", b"\x00\x01garbage")),
        Duration::from_secs(5),
    );
    assert!(matches!(r, Err(TrackerError::BadReply(_))), "{r:?}");
}

#[test]
fn an_html_error_page_names_the_status() {
    let page = b"<html><head><title>404 Not Found</title></head><body>nope</body></html>";
    let (r, _) = announce_fake(
        Some(http("404 Not Found", "text/html", page)),
        Duration::from_secs(5),
    );
    match r {
        Err(TrackerError::Unreachable(m)) => assert!(m.contains("404"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The same page with a 200 status is still not a tracker reply.
    let (r, _) = announce_fake(
        Some(http("200 OK", "text/html", page)),
        Duration::from_secs(5),
    );
    assert!(matches!(r, Err(TrackerError::BadReply(_))), "{r:?}");
}

#[test]
fn a_failure_reason_is_reported_even_with_an_error_status() {
    let body = b"d14:failure reason12:unregisterede";
    let (r, _) = announce_fake(
        Some(http("200 OK", "text/plain", body)),
        Duration::from_secs(5),
    );
    assert!(
        matches!(&r, Err(TrackerError::Failure(m)) if m == "unregistered"),
        "{r:?}"
    );
    let (r, _) = announce_fake(
        Some(http("403 Forbidden", "text/plain", body)),
        Duration::from_secs(5),
    );
    assert!(
        matches!(&r, Err(TrackerError::Failure(m)) if m == "unregistered"),
        "{r:?}"
    );
}

#[test]
fn an_oversized_reply_is_refused() {
    let mut body = b"d8:intervali60e5:peers3145728:".to_vec();
    body.resize(body.len() + 3 * 1024 * 1024, 0);
    body.push(b'e');
    let (r, _) = announce_fake(
        Some(http("200 OK", "text/plain", &body)),
        Duration::from_secs(10),
    );
    assert!(
        matches!(&r, Err(TrackerError::BadReply(m)) if m.contains("larger")),
        "{r:?}"
    );
}

#[test]
fn a_silent_tracker_times_out_in_time() {
    let timeout = Duration::from_millis(700);
    let start = Instant::now();
    let (r, _) = announce_fake(None, timeout);
    let took = start.elapsed();
    assert!(matches!(r, Err(TrackerError::Timeout)), "{r:?}");
    assert!(took < timeout + Duration::from_secs(1), "took {took:?}");
}

#[test]
fn a_closed_port_is_unreachable_in_plain_words_and_other_schemes_unsupported() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = HttpTracker::open(&format!("http://127.0.0.1:{port}/announce")).unwrap();
    let r = t.announce(&request(
        b"-RV0001-eeeeeeeeeeee",
        6881,
        Duration::from_secs(5),
    ));
    assert!(matches!(r, Err(TrackerError::Unreachable(_))), "{r:?}");
    let said = r.unwrap_err().to_string();
    assert!(
        said.contains(&format!(
            "cannot connect to http://127.0.0.1:{port}/announce"
        )) && said.to_lowercase().contains("connection refused"),
        "{said}"
    );
    assert!(matches!(
        HttpTracker::open("udp://127.0.0.1:1/announce"),
        Err(TrackerError::Unsupported(_))
    ));
    assert!(matches!(
        HttpTracker::open("not a url"),
        Err(TrackerError::Unsupported(_))
    ));
}

#[test]
fn an_announce_leaves_from_its_local_address_or_fails_naming_it() {
    let body = b"d8:intervali60e5:peers0:e";
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/announce", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut s, from) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).is_ok_and(|n| n == 1) {
            head.push(byte[0]);
        }
        s.write_all(&http("200 OK", "text/plain", body)).unwrap();
        from
    });
    let t = HttpTracker::open(&url).unwrap();
    let mut req = request(b"-RV0001-ffffffffffff", 6881, Duration::from_secs(5));
    req.local_ip = Some("127.0.0.3".parse().unwrap());
    t.announce(&req).unwrap();
    assert_eq!(server.join().unwrap().ip().to_string(), "127.0.0.3");

    // Not an address of this host: the announce fails rather than leave from another one.
    req.local_ip = Some("192.0.2.1".parse().unwrap());
    let said = t.announce(&req).unwrap_err().to_string();
    assert!(
        said.contains(&format!("cannot connect to {url}")) && said.contains("192.0.2.1"),
        "{said}"
    );
}
