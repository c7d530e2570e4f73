//! Magnet links (BEP 9): `magnet:?xt=urn:btih:<hash>&dn=<name>&tr=<tracker>&x.pe=<peer>`.
//!
//! The info-hash may be 40 hex digits or 32 base32 characters. Several `tr` and `x.pe` are
//! kept in order without duplicates; keys we do not use (`so`, `xl`, `ws`, `btmh` beside a
//! `btih`) are ignored, as other clients do. The URI is hostile input: its length is capped
//! and every error is one line naming the part that is wrong.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use super::InfoHash;

/// Longest magnet URI we parse: real ones with dozens of trackers stay under 8 KiB.
pub const MAX_MAGNET_LEN: usize = 64 * 1024;

/// A parsed magnet link: enough to find a swarm and fetch the rest of the torrent from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Magnet {
    pub info_hash: InfoHash,
    /// `dn`: a display name until the metadata says otherwise.
    pub name: Option<String>,
    /// `tr`: tracker URLs, each its own tier.
    pub trackers: Vec<String>,
    /// `x.pe`: peers to dial directly.
    pub peers: Vec<SocketAddr>,
}

/// Why a magnet URI was refused. Every variant reads as one line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MagnetError {
    #[error("not a magnet link (it must start with 'magnet:?')")]
    NotMagnet,
    #[error("magnet link is longer than {MAX_MAGNET_LEN} bytes")]
    TooLong,
    #[error("magnet link has no 'xt=urn:btih:' info-hash")]
    NoInfoHash,
    #[error(
        "magnet link names only a BitTorrent v2 hash (urn:btmh); v2-only torrents are not supported"
    )]
    V2Only,
    #[error("magnet info-hash {0:?} is neither 40 hex digits nor 32 base32 characters")]
    BadInfoHash(String),
    #[error("magnet link names two different info-hashes")]
    TwoInfoHashes,
    #[error("magnet peer {0:?} (x.pe) is not an IP address and port")]
    BadPeer(String),
}

impl Magnet {
    /// Parses a magnet URI.
    pub fn parse(uri: &str) -> Result<Magnet, MagnetError> {
        if uri.len() > MAX_MAGNET_LEN {
            return Err(MagnetError::TooLong);
        }
        let query =
            strip_prefix_ignore_case(uri.trim(), "magnet:?").ok_or(MagnetError::NotMagnet)?;
        let mut info_hash = None;
        let mut v2_hash = false;
        let mut magnet = Magnet {
            info_hash: InfoHash([0; 20]),
            name: None,
            trackers: Vec::new(),
            peers: Vec::new(),
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "xt" => {
                    if let Some(h) = strip_prefix_ignore_case(&value, "urn:btih:") {
                        let h = parse_hash(h)?;
                        if info_hash.is_some_and(|old| old != h) {
                            return Err(MagnetError::TwoInfoHashes);
                        }
                        info_hash = Some(h);
                    } else if strip_prefix_ignore_case(&value, "urn:btmh:").is_some() {
                        v2_hash = true;
                    }
                }
                "dn" if magnet.name.is_none() && !value.is_empty() => {
                    magnet.name = Some(value.into_owned());
                }
                "tr" if !value.is_empty() && !magnet.trackers.iter().any(|t| *t == value) => {
                    magnet.trackers.push(value.into_owned());
                }
                "x.pe" => {
                    let peer: SocketAddr = value
                        .parse()
                        .map_err(|_| MagnetError::BadPeer(value.clone().into_owned()))?;
                    if !magnet.peers.contains(&peer) {
                        magnet.peers.push(peer);
                    }
                }
                _ => {}
            }
        }
        magnet.info_hash = match info_hash {
            Some(h) => h,
            None if v2_hash => return Err(MagnetError::V2Only),
            None => return Err(MagnetError::NoInfoHash),
        };
        Ok(magnet)
    }

    /// Whether `s` looks like a magnet link rather than a path (for commands that take either).
    pub fn is_magnet(s: &str) -> bool {
        strip_prefix_ignore_case(s.trim(), "magnet:").is_some()
    }

    /// The link in canonical form: hex info-hash, then `dn`, `tr` and `x.pe`.
    pub fn to_uri(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(n) = &self.name {
            q.append_pair("dn", n);
        }
        for t in &self.trackers {
            q.append_pair("tr", t);
        }
        for p in &self.peers {
            q.append_pair("x.pe", &p.to_string());
        }
        let rest = q.finish();
        let sep = if rest.is_empty() { "" } else { "&" };
        format!("magnet:?xt=urn:btih:{}{sep}{rest}", self.info_hash.hex())
    }
}

impl FromStr for Magnet {
    type Err = MagnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Magnet::parse(s)
    }
}

impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// 40 hex digits or 32 base32 characters (either case), as BEP 9 allows.
fn parse_hash(s: &str) -> Result<InfoHash, MagnetError> {
    let bad = || MagnetError::BadInfoHash(s.chars().take(80).collect());
    let bytes = match s.len() {
        40 => data_encoding::HEXLOWER_PERMISSIVE.decode(s.as_bytes()),
        32 => data_encoding::BASE32.decode(s.to_ascii_uppercase().as_bytes()),
        _ => return Err(bad()),
    }
    .map_err(|_| bad())?;
    let hash: [u8; 20] = bytes.try_into().map_err(|_| bad())?;
    Ok(InfoHash(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    #[test]
    fn hex_and_base32_name_the_same_hash() {
        let hex = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}")).unwrap();
        let b32 = data_encoding::BASE32.encode(&hex.info_hash.0);
        let from_b32 =
            Magnet::parse(&format!("magnet:?xt=urn:btih:{}", b32.to_lowercase())).unwrap();
        assert_eq!(hex.info_hash, from_b32.info_hash);
        assert_eq!(hex.info_hash.hex(), HEX);
        let upper = Magnet::parse(&format!("MAGNET:?xt=urn:btih:{}", HEX.to_uppercase())).unwrap();
        assert_eq!(upper.info_hash, hex.info_hash);
    }

    #[test]
    fn name_trackers_and_peers_are_kept_and_unknown_keys_ignored() {
        let m = Magnet::parse(&format!(
            "magnet:?xt=urn:btih:{HEX}&dn=Big+Buck%20Bunny&tr=http%3A%2F%2Fa%2Fannounce\
             &tr=udp://b:80&tr=udp://b:80&x.pe=127.0.0.2:6881&x.pe=[::1]:7000&so=0,2,4-6&xl=10"
        ))
        .unwrap();
        assert_eq!(m.name.as_deref(), Some("Big Buck Bunny"));
        assert_eq!(m.trackers, vec!["http://a/announce", "udp://b:80"]);
        assert_eq!(
            m.peers,
            vec![
                "127.0.0.2:6881".parse().unwrap(),
                "[::1]:7000".parse().unwrap()
            ]
        );
        assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
    }

    #[test]
    fn malformed_links_give_one_line_errors() {
        let cases = [
            ("/tmp/a.torrent", MagnetError::NotMagnet),
            ("magnet:?dn=x", MagnetError::NoInfoHash),
            (
                "magnet:?xt=urn:btih:abc",
                MagnetError::BadInfoHash("abc".into()),
            ),
            ("magnet:?xt=urn:btmh:1220aaaa", MagnetError::V2Only),
            (
                &format!("magnet:?xt=urn:btih:{HEX}&x.pe=host.example:80"),
                MagnetError::BadPeer("host.example:80".into()),
            ),
            (
                &format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{}", "0".repeat(40)),
                MagnetError::TwoInfoHashes,
            ),
        ];
        for (uri, want) in cases {
            let e = Magnet::parse(uri).unwrap_err();
            assert_eq!(e, want, "{uri}");
            assert!(!e.to_string().contains('\n'));
        }
        let bad_hex = format!("magnet:?xt=urn:btih:{}", "g".repeat(40));
        assert!(matches!(
            Magnet::parse(&bad_hex),
            Err(MagnetError::BadInfoHash(_))
        ));
        let long = format!(
            "magnet:?xt=urn:btih:{HEX}&tr={}",
            "a".repeat(MAX_MAGNET_LEN)
        );
        assert_eq!(Magnet::parse(&long), Err(MagnetError::TooLong));
    }

    #[test]
    fn a_btmh_beside_a_btih_is_ignored() {
        let m = Magnet::parse(&format!("magnet:?xt=urn:btmh:1220ab&xt=urn:btih:{HEX}")).unwrap();
        assert_eq!(m.info_hash.hex(), HEX);
    }
}
