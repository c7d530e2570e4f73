//! Magnet links (BEP 9): `magnet:?xt=urn:btih:<hash>&dn=<name>&tr=<tracker>&x.pe=<peer>`.
//!
//! The info-hash may be 40 hex digits or 32 base32 characters. Several `tr` and `x.pe` are
//! kept in order without duplicates; keys we do not use (`so`, `xl`, `ws`, `btmh` beside a
//! `btih`) are ignored, as other clients do. A link naming only a v2 hash (`urn:btmh:1220` and
//! the SHA-256 of the info dictionary, BEP 52) finds its swarm by that hash truncated to 20
//! bytes, as v2 peers do. The URI is hostile input: its length is capped
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
    /// The swarm's hash: the v1 info-hash, or the v2 one truncated.
    pub info_hash: InfoHash,
    /// The v2 info-hash of a link that names only that (`urn:btmh`): the metadata is checked
    /// against it, and the piece layers are then fetched from peers.
    pub info_hash_v2: Option<[u8; 32]>,
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
        let mut v2_hash = None;
        let mut magnet = Magnet {
            info_hash: InfoHash([0; 20]),
            info_hash_v2: None,
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
                    } else if let Some(h) = strip_prefix_ignore_case(&value, "urn:btmh:") {
                        if v2_hash.is_some_and(|old| old != h) {
                            return Err(MagnetError::TwoInfoHashes);
                        }
                        v2_hash = Some(h.to_string());
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
        magnet.info_hash = match (info_hash, v2_hash) {
            (Some(h), _) => h,
            (None, Some(v2)) => {
                let v2 = parse_v2_hash(&v2)?;
                magnet.info_hash_v2 = Some(v2);
                InfoHash(v2[..20].try_into().expect("20 of 32 bytes"))
            }
            (None, None) => return Err(MagnetError::NoInfoHash),
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
        match &self.info_hash_v2 {
            Some(v2) => format!("magnet:?xt=urn:btmh:1220{}{sep}{rest}", super::hex(v2)),
            None => format!("magnet:?xt=urn:btih:{}{sep}{rest}", self.info_hash.hex()),
        }
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

/// A multihash of SHA-256 in hex: `1220` and 64 hex digits.
fn parse_v2_hash(s: &str) -> Result<[u8; 32], MagnetError> {
    let bad = || MagnetError::BadInfoHash(s.chars().take(80).collect());
    let hex = strip_prefix_ignore_case(s, "1220").ok_or_else(bad)?;
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
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
            (
                "magnet:?xt=urn:btmh:1220aaaa",
                MagnetError::BadInfoHash("1220aaaa".into()),
            ),
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
        assert_eq!(m.info_hash_v2, None);
    }

    #[test]
    fn a_btmh_alone_names_the_swarm_by_its_truncated_hash() {
        let v2 = "a06da3fc570d7c933950b672b14424137165a7c692eb3f32e33b5f79e5cf0604";
        let m = Magnet::parse(&format!("magnet:?xt=urn:btmh:1220{v2}&dn=x")).unwrap();
        assert_eq!(m.info_hash.hex(), v2[..40]);
        assert_eq!(super::super::hex(&m.info_hash_v2.unwrap()), v2);
        assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
        // Another hash function than SHA-256 is not a v2 hash.
        assert!(Magnet::parse(&format!("magnet:?xt=urn:btmh:1320{v2}")).is_err());
    }
}
