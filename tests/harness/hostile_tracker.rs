//! Trackers that misbehave, in the test process: an HTTP tracker answering garbage, an HTML
//! error page, a huge list of dead peers or nothing at all, and a UDP tracker answering with the
//! wrong transaction id. Each counts the requests it got, so a test can check for backoff.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::ports::LOCALHOST;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostility {
    /// HTTP 200 with a body that is not bencode.
    Garbage,
    /// HTTP 500 with an HTML error page.
    HtmlError,
    /// A valid reply listing this many peers on loopback ports where nobody listens.
    HugePeerList(u32),
    /// Reads the request and never answers.
    Hang,
    /// HTTP 200 announcing a 4,000 MB body on a connection kept alive, streamed for as long as
    /// the client reads it, up to [`ENDLESS_REPLY_SENT`] per connection so that a client that
    /// keeps reading fails its test before it exhausts the machine.
    EndlessReply,
    /// UDP: answers every connect request, with the transaction id changed.
    UdpWrongTransaction,
}

pub struct HostileTracker {
    pub url: String,
    requests: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HostileTracker {
    pub fn start(kind: Hostility) -> HostileTracker {
        // In this process, so the kernel picks the port as it binds: a port found free first
        // and bound after can be taken in between (seen once in CI: "Address already in use").
        let requests = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (requests.clone(), stop.clone());
        let (url, thread) = if kind == Hostility::UdpWrongTransaction {
            let sock = UdpSocket::bind((LOCALHOST, 0)).expect("bind hostile UDP tracker");
            let port = sock.local_addr().expect("UDP tracker address").port();
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("udp timeout");
            (
                format!("udp://{LOCALHOST}:{port}"),
                std::thread::spawn(move || serve_udp(sock, r, s)),
            )
        } else {
            let l = TcpListener::bind((LOCALHOST, 0)).expect("bind hostile HTTP tracker");
            let port = l.local_addr().expect("HTTP tracker address").port();
            l.set_nonblocking(true).expect("nonblocking listener");
            (
                format!("http://{LOCALHOST}:{port}/announce"),
                std::thread::spawn(move || serve_http(l, kind, r, s)),
            )
        };
        HostileTracker {
            url,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// Announce requests received so far.
    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for HostileTracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What [`Hostility::EndlessReply`] sends on one connection at most.
pub const ENDLESS_REPLY_SENT: u64 = 256 << 20;

fn serve_http(l: TcpListener, kind: Hostility, requests: Arc<AtomicU32>, stop: Arc<AtomicBool>) {
    let mut hung: Vec<TcpStream> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let mut s = match l.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(_) => continue,
        };
        let _ = s.set_nonblocking(false);
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if !read_request_head(&mut s) {
            continue;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let (status, ctype, body): (&str, &str, Vec<u8>) = match kind {
            Hostility::Garbage => ("200 OK", "text/plain", b"d8:intervali1800e5:peers".to_vec()),
            Hostility::HtmlError => (
                "500 Internal Server Error",
                "text/html",
                b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>".to_vec(),
            ),
            Hostility::HugePeerList(n) => ("200 OK", "text/plain", huge_reply(n)),
            Hostility::Hang | Hostility::UdpWrongTransaction => {
                hung.push(s);
                continue;
            }
            Hostility::EndlessReply => {
                stream_endless_reply(&mut s);
                continue;
            }
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&body);
    }
}

/// Streams until the client goes away (or stops reading for 5 s), or the cap is reached.
fn stream_endless_reply(s: &mut TcpStream) {
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4000000000\r\n\r\n";
    if s.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = [b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < ENDLESS_REPLY_SENT && s.write_all(&chunk).is_ok() {
        sent += chunk.len() as u64;
    }
}

/// Reads up to the end of the request head; false if the client went away first.
fn read_request_head(s: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return false;
        }
    }
    true
}

/// A compact reply of `n` peers at 127.3.x.y on port 9 (discard: nobody listens there).
fn huge_reply(n: u32) -> Vec<u8> {
    let mut peers = Vec::with_capacity(n as usize * 6);
    for i in 0..n {
        peers.extend_from_slice(&[127, 3, (i >> 8) as u8, i as u8]);
        peers.extend_from_slice(&9u16.to_be_bytes());
    }
    let mut body = format!("d8:intervali1800e5:peers{}:", peers.len()).into_bytes();
    body.extend_from_slice(&peers);
    body.push(b'e');
    body
}

fn serve_udp(sock: UdpSocket, requests: Arc<AtomicU32>, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        requests.fetch_add(1, Ordering::SeqCst);
        if n < 16 {
            continue;
        }
        // connect reply: action 0, the transaction id off by one, a connection id.
        let tid = u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]).wrapping_add(1);
        let mut reply = Vec::with_capacity(16);
        reply.extend_from_slice(&0u32.to_be_bytes());
        reply.extend_from_slice(&tid.to_be_bytes());
        reply.extend_from_slice(&0x1234_5678_9abc_def0u64.to_be_bytes());
        let _ = sock.send_to(&reply, from);
    }
}
