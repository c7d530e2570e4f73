//! BEP 15 datagrams: building requests and reading replies.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use rivulet_core::plugin::{AnnounceEvent, AnnounceRequest, AnnounceResponse, TrackerError};

const PROTOCOL_ID: u64 = 0x41727101980;
pub(crate) const CONNECT: u32 = 0;
pub(crate) const ANNOUNCE: u32 = 1;
const ERROR: u32 = 3;
/// BEP 41 option carrying the URL's path and query.
const URL_DATA: u8 = 2;
/// More peers than this in one reply are dropped.
const MAX_PEERS: usize = 2000;

pub(crate) fn connect(transaction: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(16);
    p.extend(PROTOCOL_ID.to_be_bytes());
    p.extend(CONNECT.to_be_bytes());
    p.extend(transaction.to_be_bytes());
    p
}

pub(crate) fn announce(
    connection: u64,
    transaction: u32,
    req: &AnnounceRequest,
    url_data: &[u8],
) -> Vec<u8> {
    let event: u32 = match req.event {
        AnnounceEvent::None => 0,
        AnnounceEvent::Completed => 1,
        AnnounceEvent::Started => 2,
        AnnounceEvent::Stopped => 3,
    };
    let mut p = Vec::with_capacity(98 + url_data.len() + url_data.len() / 255 * 2 + 2);
    p.extend(connection.to_be_bytes());
    p.extend(ANNOUNCE.to_be_bytes());
    p.extend(transaction.to_be_bytes());
    p.extend(req.info_hash);
    p.extend(req.peer_id);
    p.extend(req.downloaded.to_be_bytes());
    p.extend(req.left.to_be_bytes());
    p.extend(req.uploaded.to_be_bytes());
    p.extend(event.to_be_bytes());
    p.extend(0u32.to_be_bytes()); // our IP: the one the datagram comes from
    p.extend(req.key.to_be_bytes());
    p.extend(i32::try_from(req.num_want).unwrap_or(-1).to_be_bytes());
    p.extend(req.port.to_be_bytes());
    for part in url_data.chunks(255) {
        p.push(URL_DATA);
        p.push(part.len() as u8);
        p.extend(part);
    }
    p
}

/// The transaction id a reply answers, if it is long enough to carry one.
pub(crate) fn transaction_of(reply: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(reply.get(4..8)?.try_into().ok()?))
}

/// Checks a reply's action, turning a BEP 15 error reply into [`TrackerError::Failure`].
fn expect_action(reply: &[u8], action: u32) -> Result<(), TrackerError> {
    let got = reply
        .get(0..4)
        .map(|a| u32::from_be_bytes([a[0], a[1], a[2], a[3]]));
    match got {
        Some(a) if a == action => Ok(()),
        Some(ERROR) => Err(TrackerError::Failure(one_line(
            &reply[8.min(reply.len())..],
        ))),
        Some(a) => Err(TrackerError::BadReply(format!(
            "action {a} in reply, expected {action}"
        ))),
        None => Err(TrackerError::BadReply("reply too short".into())),
    }
}

pub(crate) fn connection_id(reply: &[u8]) -> Result<u64, TrackerError> {
    expect_action(reply, CONNECT)?;
    let id = reply
        .get(8..16)
        .ok_or_else(|| TrackerError::BadReply(format!("connect reply of {} bytes", reply.len())))?;
    Ok(u64::from_be_bytes(id.try_into().unwrap_or_default()))
}

pub(crate) fn announce_response(reply: &[u8]) -> Result<AnnounceResponse, TrackerError> {
    expect_action(reply, ANNOUNCE)?;
    let (head, peers) = reply.split_at_checked(20).ok_or_else(|| {
        TrackerError::BadReply(format!("announce reply of {} bytes", reply.len()))
    })?;
    if !peers.len().is_multiple_of(6) {
        return Err(TrackerError::BadReply(format!(
            "compact peer list of {} bytes is not a multiple of 6",
            peers.len()
        )));
    }
    let word = |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    Ok(AnnounceResponse {
        peers: peers
            .chunks_exact(6)
            .map(|c| {
                let ip = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
                SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be_bytes([c[4], c[5]])))
            })
            .filter(|a| a.port() != 0)
            .take(MAX_PEERS)
            .collect(),
        interval: Duration::from_secs(word(8).into()),
        min_interval: None,
        leechers: Some(word(12)),
        seeders: Some(word(16)),
        warning: None,
    })
}

fn one_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announce_layout_and_url_data() {
        let req = AnnounceRequest {
            info_hash: [1; 20],
            peer_id: [2; 20],
            port: 0x1ae1,
            uploaded: 3,
            downloaded: 4,
            left: 5,
            event: AnnounceEvent::Stopped,
            num_want: u32::MAX,
            key: 6,
            timeout: Duration::from_secs(1),
            local_ip: None,
        };
        let p = announce(0xabcd, 9, &req, b"/ann?x=1");
        assert_eq!(p.len(), 98 + 2 + 8);
        assert_eq!(&p[0..8], &0xabcdu64.to_be_bytes());
        assert_eq!(&p[8..16], &[0, 0, 0, 1, 0, 0, 0, 9]);
        assert_eq!(&p[56..64], &4u64.to_be_bytes());
        assert_eq!(&p[80..84], &3u32.to_be_bytes());
        assert_eq!(&p[92..96], &(-1i32).to_be_bytes());
        assert_eq!(&p[96..98], &[0x1a, 0xe1]);
        assert_eq!(&p[98..], b"\x02\x08/ann?x=1");
    }

    #[test]
    fn replies() {
        let mut r = vec![0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 60, 0, 0, 0, 2, 0, 0, 0, 3];
        r.extend([127, 0, 0, 1, 0x1a, 0xe1]);
        let a = announce_response(&r).unwrap();
        assert_eq!(a.peers, vec!["127.0.0.1:6881".parse().unwrap()]);
        assert_eq!(
            (a.interval.as_secs(), a.leechers, a.seeders),
            (60, Some(2), Some(3))
        );
        r.push(0);
        assert!(matches!(
            announce_response(&r),
            Err(TrackerError::BadReply(_))
        ));
        let e = announce_response(b"\0\0\0\x03\0\0\0\x09bad\ntorrent").unwrap_err();
        assert!(
            matches!(&e, TrackerError::Failure(m) if m == "bad torrent"),
            "{e}"
        );
        assert!(matches!(
            connection_id(&r[..12]),
            Err(TrackerError::BadReply(_))
        ));
        assert!(matches!(
            announce_response(&[0, 0]),
            Err(TrackerError::BadReply(_))
        ));
    }
}

#[cfg(test)]
mod fuzz;
