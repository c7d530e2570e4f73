//! A minimal HTTP tracker that answers every announce with one fixed compact peer list: the
//! proxies' addresses. opentracker hands out the announcing address, and the leechers must see
//! the proxies, not the seeders; a tracker treats every leecher alike (aria2 has no `--peer`).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;

/// Serves on `listen` until the process ends; returns the announce URL.
pub fn serve(listen: SocketAddr, peers: &[SocketAddr]) -> String {
    let listener =
        TcpListener::bind(listen).unwrap_or_else(|e| panic!("tracker cannot listen: {e}"));
    let mut compact = Vec::new();
    for p in peers {
        let SocketAddr::V4(v4) = p else {
            panic!("compact peer lists hold IPv4 only: {p}")
        };
        compact.extend(v4.ip().octets());
        compact.extend(v4.port().to_be_bytes());
    }
    let mut body = format!(
        "d8:completei{n}e10:incompletei0e8:intervali1800e12:min intervali1800e5:peers{}:",
        compact.len(),
        n = peers.len()
    )
    .into_bytes();
    body.extend(compact);
    body.push(b'e');
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let body = body.clone();
            thread::spawn(move || {
                let Ok(clone) = conn.try_clone() else { return };
                let mut lines = BufReader::new(clone);
                let mut line = String::new();
                // The request's head ends with an empty line; announces carry no body.
                while lines.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            });
        }
    });
    format!("http://{listen}/announce")
}
