//! Parsing a tracker's bencoded announce reply (BEP 3, compact peers BEP 23, `peers6` BEP 7).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rivulet_core::metainfo::span;
use rivulet_core::plugin::{AnnounceResponse, TrackerError};
use serde::Deserialize;
use serde_bytes::ByteBuf;

/// More peers than this in one reply are dropped: nobody connects to them all anyway.
pub(crate) const MAX_PEERS: usize = 2000;
/// Used when a tracker gives no interval.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1800);

#[derive(Deserialize)]
struct Reply {
    #[serde(rename = "failure reason")]
    failure: Option<ByteBuf>,
    #[serde(rename = "warning message")]
    warning: Option<ByteBuf>,
    interval: Option<i64>,
    #[serde(rename = "min interval")]
    min_interval: Option<i64>,
    complete: Option<i64>,
    incomplete: Option<i64>,
    peers: Option<Peers>,
    peers6: Option<ByteBuf>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Peers {
    Compact(ByteBuf),
    Dicts(Vec<PeerDict>),
}

#[derive(Deserialize)]
struct PeerDict {
    ip: ByteBuf,
    port: i64,
}

pub(crate) fn parse(body: &[u8]) -> Result<AnnounceResponse, TrackerError> {
    // The decoder's message quotes the offending bytes, which may hold newlines and escapes.
    let not_bencode = |e: &dyn std::fmt::Display| {
        TrackerError::BadReply(format!(
            "not a bencoded announce reply ({}): {}",
            one_line(e.to_string().as_bytes()),
            preview(body)
        ))
    };
    // serde_bencode recurses once per nesting level: a 2 MiB reply of `l`s would overflow the
    // stack, so the shape is checked (depth-limited) first.
    span::value_end(body).map_err(|e| not_bencode(&e))?;
    let reply: Reply = serde_bencode::from_bytes(body).map_err(|e| not_bencode(&e))?;
    if let Some(reason) = reply.failure {
        return Err(TrackerError::Failure(one_line(&reason)));
    }
    let mut peers = Vec::new();
    match reply.peers {
        Some(Peers::Compact(bytes)) => compact(&bytes, 6, &mut peers)?,
        Some(Peers::Dicts(dicts)) => peers.extend(
            dicts
                .iter()
                .filter_map(|d| {
                    let ip: IpAddr = std::str::from_utf8(&d.ip).ok()?.parse().ok()?;
                    let port = u16::try_from(d.port).ok().filter(|&p| p != 0)?;
                    Some(SocketAddr::new(ip, port))
                })
                .take(MAX_PEERS),
        ),
        None => {}
    }
    if let Some(bytes) = reply.peers6 {
        compact(&bytes, 18, &mut peers)?;
    }
    peers.truncate(MAX_PEERS);
    Ok(AnnounceResponse {
        peers,
        interval: match reply.interval {
            Some(s) => seconds(s, "interval")?,
            None => DEFAULT_INTERVAL,
        },
        min_interval: reply
            .min_interval
            .map(|s| seconds(s, "min interval"))
            .transpose()?,
        seeders: reply.complete.and_then(|n| u32::try_from(n).ok()),
        leechers: reply.incomplete.and_then(|n| u32::try_from(n).ok()),
        warning: reply.warning.map(|w| one_line(&w)),
    })
}

/// Appends the compact peers of `bytes` (`width` 6 for IPv4, 18 for IPv6) to `out`.
fn compact(bytes: &[u8], width: usize, out: &mut Vec<SocketAddr>) -> Result<(), TrackerError> {
    if !bytes.len().is_multiple_of(width) {
        return Err(TrackerError::BadReply(format!(
            "compact peer list of {} bytes is not a multiple of {width}",
            bytes.len()
        )));
    }
    let room = MAX_PEERS.saturating_sub(out.len());
    out.extend(bytes.chunks_exact(width).take(room).filter_map(|c| {
        let (ip, port) = c.split_at(width - 2);
        let port = u16::from_be_bytes([port[0], port[1]]);
        let ip = match ip.len() {
            4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip).ok()?)),
            _ => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?)),
        };
        (port != 0).then_some(SocketAddr::new(ip, port))
    }));
    Ok(())
}

fn seconds(s: i64, what: &str) -> Result<Duration, TrackerError> {
    u64::try_from(s)
        .map(Duration::from_secs)
        .map_err(|_| TrackerError::BadReply(format!("negative {what} {s}")))
}

/// Tracker text as one printable line.
fn one_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}

/// The start of an unexpected body, for an error message.
pub(crate) fn preview(body: &[u8]) -> String {
    let text = one_line(&body[..body.len().min(60)]);
    if body.len() > 60 {
        format!("{text:?}...")
    } else {
        format!("{text:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_dict_and_v6_peers() {
        let body = b"d8:completei3e10:incompletei4e8:intervali900e12:min intervali60e\
5:peers12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x506:peers618:\
\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe2e";
        let r = parse(body).unwrap();
        assert_eq!(
            r.peers,
            vec![
                "127.0.0.1:6881".parse().unwrap(),
                "10.0.0.2:80".parse().unwrap(),
                "[::1]:6882".parse().unwrap()
            ]
        );
        assert_eq!(r.interval, Duration::from_secs(900));
        assert_eq!(r.min_interval, Some(Duration::from_secs(60)));
        assert_eq!((r.seeders, r.leechers), (Some(3), Some(4)));

        let dicts =
            b"d8:intervali60e5:peersld2:ip9:127.0.0.14:porti7000e7:peer id20:aaaaaaaaaaaaaaaaaaaae\
d2:ip12:not-an-ip.ex4:porti1ee\
d2:ip3:::14:porti7001eeee";
        let r = parse(dicts).unwrap();
        assert_eq!(
            r.peers,
            vec![
                "127.0.0.1:7000".parse().unwrap(),
                "[::1]:7001".parse().unwrap()
            ]
        );
    }

    #[test]
    fn failures_warnings_and_bad_replies() {
        let e = parse(b"d14:failure reason17:torrent not found").unwrap_err();
        assert!(matches!(e, TrackerError::BadReply(_)), "{e}");
        let e = parse(b"d14:failure reason17:torrent not founde").unwrap_err();
        assert!(
            matches!(&e, TrackerError::Failure(m) if m == "torrent not found"),
            "{e}"
        );
        let r = parse(b"d8:intervali5e15:warning message4:slow5:peers0:e").unwrap();
        assert_eq!(r.warning.as_deref(), Some("slow"));
        let e = parse(b"d8:intervali5e5:peers7:abcdefge").unwrap_err();
        assert!(e.to_string().contains("multiple of 6"), "{e}");
        let e = parse(b"<html><body>502 Bad Gateway</body></html>").unwrap_err();
        assert!(
            matches!(&e, TrackerError::BadReply(m) if m.contains("<html>")),
            "{e}"
        );
        let e = parse(b"d8:intervali-5ee").unwrap_err();
        assert!(matches!(e, TrackerError::BadReply(_)));
    }

    #[test]
    fn decoder_errors_are_one_line() {
        // serde_bencode quotes the bad integer, newline and terminal escape included.
        let e = parse(b"d8:intervali\n\x1b[2J5ee").unwrap_err().to_string();
        assert!(!e.chars().any(char::is_control), "{e:?}");
        let long = format!("d8:intervali{}ee", "9".repeat(100_000));
        assert!(parse(long.as_bytes()).unwrap_err().to_string().len() < 600);
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        // A reply may be 2 MiB; serde_bencode alone overflowed the stack on this.
        let n = 1_000_000;
        for prefix in ["d5:peers", "d1:x", "d8:intervali1e5:peersl"] {
            let mut body = prefix.as_bytes().to_vec();
            body.extend(std::iter::repeat_n(b'l', n));
            body.extend(std::iter::repeat_n(b'e', n));
            body.push(b'e');
            let e = parse(&body).unwrap_err();
            assert!(
                matches!(&e, TrackerError::BadReply(m) if m.contains("nesting too deep")),
                "{prefix}: {e}"
            );
        }
    }

    #[test]
    fn caps_the_peer_count() {
        let mut body = b"d8:intervali60e5:peers".to_vec();
        let n = MAX_PEERS + 100;
        body.extend(format!("{}:", n * 6).bytes());
        for i in 0..n {
            body.extend([10, 0, (i >> 8) as u8, i as u8, 0x1a, 0xe1]);
        }
        body.push(b'e');
        assert_eq!(parse(&body).unwrap().peers.len(), MAX_PEERS);
    }
}

#[cfg(test)]
mod fuzz;
