//! What the DHT tests need besides the peers themselves: a torrent with no tracker at all (so
//! its peers can only come from the DHT) and a raw KRPC ping to see that a node still answers.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_bencode::value::Value;

use crate::fixture::Fixture;

/// `dir/<id>-trackerless.torrent`: `fixture`'s torrent without `announce` or `announce-list`.
/// The info dictionary, and so the info-hash, is unchanged.
pub fn trackerless_torrent(fixture: &Fixture, dir: &Path) -> PathBuf {
    without_trackers(fixture, dir, false)
}

/// [`trackerless_torrent`] marked private (BEP 27), which gives it an info-hash of its own.
pub fn private_trackerless_torrent(fixture: &Fixture, dir: &Path) -> PathBuf {
    without_trackers(fixture, dir, true)
}

fn without_trackers(fixture: &Fixture, dir: &Path, private: bool) -> PathBuf {
    let made = fixture.torrent("http://127.0.0.1:1/announce", "tracked", dir);
    let bytes = std::fs::read(&made).unwrap_or_else(|e| panic!("read {}: {e}", made.display()));
    let Ok(Value::Dict(mut top)) = serde_bencode::from_bytes::<Value>(&bytes) else {
        panic!("{} is not a bencoded dictionary", made.display());
    };
    top.remove(b"announce".as_slice());
    top.remove(b"announce-list".as_slice());
    if private && let Some(Value::Dict(info)) = top.get_mut(b"info".as_slice()) {
        info.insert(b"private".to_vec(), Value::Int(1));
    }
    let kind = if private { "private" } else { "trackerless" };
    let out = dir.join(format!("{}-{kind}.torrent", fixture.id));
    let encoded = serde_bencode::to_bytes(&Value::Dict(top)).expect("encode torrent");
    std::fs::write(&out, encoded).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    out
}

/// Sends a KRPC `ping` to `node` and waits up to `timeout` for its reply; true if the node
/// answered with a response (`y` = `r`) to our transaction. The transaction id has 4 bytes:
/// the `mainline` crate drops queries with any other length (libtorrent's have 2).
pub fn krpc_ping(node: SocketAddr, timeout: Duration) -> bool {
    let bind = SocketAddr::new(node.ip(), 0);
    let socket = UdpSocket::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
    socket
        .set_read_timeout(Some(timeout))
        .expect("read timeout");
    let ping = b"d1:ad2:id20:rivulet-test-pinger!e1:q4:ping1:t4:pgpg1:y1:qe";
    socket.send_to(ping, node).expect("send ping");
    let mut buf = [0u8; 1500];
    let Ok((n, _)) = socket.recv_from(&mut buf) else {
        return false;
    };
    let reply = &buf[..n];
    let contains = |needle: &[u8]| reply.windows(needle.len()).any(|w| w == needle);
    contains(b"1:t4:pgpg") && contains(b"1:y1:r")
}

/// Sends `count` malformed datagrams to `node`: truncated and broken bencode, wrong types,
/// a reply to a query it never sent, random bytes.
pub fn send_garbage(node: SocketAddr, count: usize) {
    let socket = UdpSocket::bind(SocketAddr::new(node.ip(), 0)).expect("bind");
    let shapes: [&[u8]; 6] = [
        b"d1:ad2:id20:",
        b"li1ei2ei3e",
        b"d1:y1:r1:t2:zz1:rd2:id3:abc5:nodes7:garbageee",
        b"d1:ad2:id20:rivulet-test-pinger!9:info_hash5:shorte1:q9:get_peers1:t2:gp1:y1:qe",
        b"d1:ad2:idi42ee1:q4:ping1:t2:pg1:y1:qe",
        b"\xff\x00\x13\x37 not bencode at all",
    ];
    for i in 0..count {
        let _ = socket.send_to(shapes[i % shapes.len()], node);
    }
}
