//! Drives a tracker client (core's `Tracker` trait, as the HTTP and UDP plugins implement it)
//! against the real opentracker, the same way for every client.

use std::net::SocketAddr;
use std::time::Duration;

use rivulet_core::plugin::{AnnounceEvent, AnnounceRequest, Tracker, TrackerError};

/// A `started` announce of `info_hash` as `peer_id` listening on `port`, 1000 bytes left.
pub fn announce_request(
    info_hash: [u8; 20],
    peer_id: &[u8; 20],
    port: u16,
    timeout: Duration,
) -> AnnounceRequest {
    AnnounceRequest {
        info_hash,
        peer_id: *peer_id,
        port,
        uploaded: 0,
        downloaded: 0,
        left: 1000,
        event: AnnounceEvent::Started,
        num_want: 50,
        key: 7,
        timeout,
        local_ip: None,
    }
}

/// Two peers (ports `port` and `port + 1`) announce `info_hash` through `client`: the second
/// must be given the first, and both counted as leechers. Returns what the client makes of an
/// announce for a torrent the tracker does not serve, for the caller to judge.
pub fn second_peer_is_given_the_first(
    client: &dyn Tracker,
    info_hash: [u8; 20],
    port: u16,
) -> TrackerError {
    let timeout = Duration::from_secs(5);
    let first = client
        .announce(&announce_request(
            info_hash,
            b"-RV0001-aaaaaaaaaaaa",
            port,
            timeout,
        ))
        .expect("first announce");
    assert!(first.interval > Duration::ZERO);
    let second = client
        .announce(&announce_request(
            info_hash,
            b"-RV0001-bbbbbbbbbbbb",
            port + 1,
            timeout,
        ))
        .expect("second announce");
    let want = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(second.peers.contains(&want), "peers {:?}", second.peers);
    assert_eq!(second.leechers, Some(2));
    client
        .announce(&announce_request(
            [9; 20],
            b"-RV0001-cccccccccccc",
            port + 2,
            timeout,
        ))
        .expect_err("an announce of a torrent the tracker does not serve")
}
