//! BEP 11 peer exchange (ut_pex): an extension message listing the peers a peer connected to
//! (`added`, with a flags byte each in `added.f`) and left (`dropped`) since its last one, as
//! compact IPv4 (`added`, `dropped`) and IPv6 (`added6`, `dropped6`) addresses.
//!
//! Decoding is bounded: a payload past [`MAX_PAYLOAD`] is refused before it is walked, the
//! bencode is walked by [`crate::metainfo::span::value_end`] (depth limit) before serde_bencode
//! decodes it, and at most [`MAX_ENTRIES`] added and dropped peers are kept. libtorrent sends
//! at most 50 added a minute (ut_pex.cpp, `max_peer_entries`), so a longer list is only a peer
//! trying to fill our candidate table.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::extension::one_line;
use crate::metainfo::span;

/// Largest payload read. 200 added and 200 dropped peers of each family with their flags take
/// 9 KiB; anything longer is refused unread.
pub const MAX_PAYLOAD: usize = 16 * 1024;
/// Added (and, separately, dropped) peers kept from one message; the rest are ignored.
pub const MAX_ENTRIES: usize = 200;

/// `added.f` bits (BEP 11).
pub const FLAG_ENCRYPTION: u8 = 0x01;
pub const FLAG_SEED: u8 = 0x02;
pub const FLAG_UTP: u8 = 0x04;
pub const FLAG_HOLEPUNCH: u8 = 0x08;
/// The peer accepts incoming connections (it was reached by an outgoing one).
pub const FLAG_REACHABLE: u8 = 0x10;

const V4_LEN: usize = 6;
const V6_LEN: usize = 18;

/// A peer named in `added`/`added6`, with its flags (0 when the sender gave none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PexPeer {
    pub addr: SocketAddr,
    pub flags: u8,
}

/// One ut_pex message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PexMsg {
    pub added: Vec<PexPeer>,
    pub dropped: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PexError {
    #[error("ut_pex: payload of {0} bytes is longer than {MAX_PAYLOAD}")]
    TooLong(usize),
    #[error("ut_pex: {0}")]
    Structure(#[from] span::SpanError),
    #[error("ut_pex: {0}")]
    Decode(String),
    #[error("ut_pex: {field} of {len} bytes is not a list of compact addresses")]
    Compact { field: &'static str, len: usize },
}

#[derive(Deserialize, Serialize, Default)]
struct Raw {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    added: Option<ByteBuf>,
    #[serde(default, rename = "added.f", skip_serializing_if = "Option::is_none")]
    added_f: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    added6: Option<ByteBuf>,
    #[serde(default, rename = "added6.f", skip_serializing_if = "Option::is_none")]
    added6_f: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dropped: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dropped6: Option<ByteBuf>,
}

impl PexMsg {
    /// The message as sent: IPv4 and IPv6 peers in their own keys, empty keys left out.
    pub fn encode(&self) -> Vec<u8> {
        let mut raw = Raw::default();
        for p in &self.added {
            let (list, flags) = match p.addr {
                SocketAddr::V4(_) => (&mut raw.added, &mut raw.added_f),
                SocketAddr::V6(_) => (&mut raw.added6, &mut raw.added6_f),
            };
            push_compact(list.get_or_insert_default(), p.addr);
            flags.get_or_insert_default().push(p.flags);
        }
        for a in &self.dropped {
            let list = match a {
                SocketAddr::V4(_) => &mut raw.dropped,
                SocketAddr::V6(_) => &mut raw.dropped6,
            };
            push_compact(list.get_or_insert_default(), *a);
        }
        serde_bencode::to_bytes(&raw).unwrap_or_default()
    }

    pub fn decode(payload: &[u8]) -> Result<PexMsg, PexError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(PexError::TooLong(payload.len()));
        }
        let end = span::value_end(payload)?;
        let raw: Raw = serde_bencode::from_bytes(&payload[..end])
            .map_err(|e| PexError::Decode(one_line(&e.to_string())))?;
        let mut added = Vec::new();
        for (field, list, flags, len) in [
            ("added", &raw.added, &raw.added_f, V4_LEN),
            ("added6", &raw.added6, &raw.added6_f, V6_LEN),
        ] {
            let addrs = compact(field, list, len)?;
            let flags = flags.as_ref().map(|f| &f[..]).unwrap_or(&[]);
            // A flags list shorter than the peers (or none) leaves the rest at 0.
            added.extend(addrs.enumerate().map(|(i, addr)| PexPeer {
                addr,
                flags: flags.get(i).copied().unwrap_or(0),
            }));
        }
        added.truncate(MAX_ENTRIES);
        let mut dropped: Vec<SocketAddr> = compact("dropped", &raw.dropped, V4_LEN)?.collect();
        dropped.extend(compact("dropped6", &raw.dropped6, V6_LEN)?);
        dropped.truncate(MAX_ENTRIES);
        Ok(PexMsg { added, dropped })
    }
}

fn push_compact(out: &mut ByteBuf, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// The addresses of a compact list of `len`-byte entries (none if the key is absent).
fn compact<'a>(
    field: &'static str,
    list: &'a Option<ByteBuf>,
    len: usize,
) -> Result<impl Iterator<Item = SocketAddr> + 'a, PexError> {
    let bytes = list.as_ref().map(|b| &b[..]).unwrap_or(&[]);
    if !bytes.len().is_multiple_of(len) {
        return Err(PexError::Compact {
            field,
            len: bytes.len(),
        });
    }
    Ok(bytes.chunks_exact(len).map(move |c| {
        let port = u16::from_be_bytes([c[len - 2], c[len - 1]]);
        let ip = if len == V4_LEN {
            IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        } else {
            let mut o = [0u8; 16];
            o.copy_from_slice(&c[..16]);
            IpAddr::V6(Ipv6Addr::from(o))
        };
        SocketAddr::new(ip, port)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str, flags: u8) -> PexPeer {
        PexPeer {
            addr: s.parse().unwrap(),
            flags,
        }
    }

    #[test]
    fn both_families_read_back() {
        let m = PexMsg {
            added: vec![
                peer("10.0.0.1:6881", FLAG_SEED | FLAG_REACHABLE),
                peer("[2001:db8::1]:51413", FLAG_UTP),
            ],
            dropped: vec!["10.0.0.2:1".parse().unwrap(), "[::1]:2".parse().unwrap()],
        };
        assert_eq!(PexMsg::decode(&m.encode()).unwrap(), m);
        assert_eq!(
            PexMsg::decode(&PexMsg::default().encode()).unwrap().added,
            []
        );
    }

    #[test]
    fn a_libtorrent_message_reads() {
        // As libtorrent writes it: both families' keys, empty ones included, sorted.
        let p = b"d5:added6:\x7f\x00\x00\x05\x1a\xe17:added.f1:\x106:added60:8:added6.f0:7:dropped0:8:dropped60:e";
        let m = PexMsg::decode(p).unwrap();
        assert_eq!(m.added, vec![peer("127.0.0.5:6881", FLAG_REACHABLE)]);
        assert!(m.dropped.is_empty());
    }

    #[test]
    fn missing_flags_are_zero_and_long_lists_are_cut() {
        let mut added = Vec::new();
        for i in 0..(MAX_ENTRIES as u32 + 50) {
            added.extend_from_slice(&(0x0a00_0000 + i).to_be_bytes());
            added.extend_from_slice(&6881u16.to_be_bytes());
        }
        let raw = Raw {
            added: Some(ByteBuf::from(added)),
            added_f: Some(ByteBuf::from(vec![FLAG_SEED])),
            ..Raw::default()
        };
        let m = PexMsg::decode(&serde_bencode::to_bytes(&raw).unwrap()).unwrap();
        assert_eq!(m.added.len(), MAX_ENTRIES);
        assert_eq!(m.added[0].flags, FLAG_SEED);
        assert_eq!(m.added[1].flags, 0);
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        assert!(matches!(
            PexMsg::decode(b"d5:added7:1234567e"),
            Err(PexError::Compact {
                field: "added",
                len: 7
            })
        ));
        assert!(matches!(
            PexMsg::decode(b"d5:addedi3ee"),
            Err(PexError::Decode(_))
        ));
        assert!(PexMsg::decode(b"l").is_err());
        assert!(PexMsg::decode(&[b'l'; 10_000]).is_err());
        let long = vec![b'0'; MAX_PAYLOAD + 1];
        assert_eq!(
            PexMsg::decode(&long),
            Err(PexError::TooLong(MAX_PAYLOAD + 1))
        );
    }
}
