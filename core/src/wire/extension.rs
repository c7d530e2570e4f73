//! The BEP 10 extension protocol: the reserved bit that says a peer speaks it, and the
//! extension handshake (message 20, extended id 0) in which each side names the extensions it
//! speaks and the message id it wants each one sent under.
//!
//! Only what we use is read (`m.ut_metadata`, `m.ut_pex`, `metadata_size`, `p`, `v`);
//! everything else in the dictionary is skipped. The payload is walked by [`crate::metainfo::span::value_end`] (depth
//! limit) before serde_bencode decodes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::metainfo::span;

/// The message id of every extension message (BEP 10).
pub const EXTENDED: u8 = 20;
/// The extended id of the extension handshake.
pub const HANDSHAKE_ID: u8 = 0;
/// The byte and bit of the reserved field that announce BEP 10 support.
pub const RESERVED_BYTE: usize = 5;
pub const RESERVED_BIT: u8 = 0x10;
/// The extended id we ask peers to send ut_metadata messages under.
pub const OUR_UT_METADATA: u8 = 1;
/// The extended id we ask peers to send ut_pex (BEP 11) messages under.
pub const OUR_UT_PEX: u8 = 2;
/// Largest info dictionary we fetch or accept. 16 MiB holds 800k piece hashes (800 GiB in
/// 1 MiB pieces, 12 TiB in 16 MiB pieces) and file lists far past any real torrent; a peer
/// naming more is refused before anything is allocated.
pub const MAX_METADATA: u64 = 16 << 20;

/// What a peer's extension handshake told us.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtHandshake {
    /// The id the peer wants ut_metadata messages sent under; `None` if it does not speak it.
    pub ut_metadata: Option<u8>,
    /// The id the peer wants ut_pex messages sent under; `None` if it does not speak it.
    pub ut_pex: Option<u8>,
    /// The TCP port the peer listens on (`p`): where others reach a peer that dialed us.
    pub listen_port: Option<u16>,
    /// The size of the info dictionary, if the peer has it.
    pub metadata_size: Option<u64>,
    /// The peer's client name (`v`).
    pub client: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtensionError {
    #[error("extension handshake: {0}")]
    Structure(#[from] span::SpanError),
    #[error("extension handshake: {0}")]
    Decode(String),
    #[error("extension handshake: metadata size {0} is out of range")]
    MetadataSize(i64),
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    m: BTreeMap<ByteBuf, RawId>,
    metadata_size: Option<i64>,
    p: Option<RawId>,
    v: Option<ByteBuf>,
}

#[derive(Serialize)]
struct RawOut<'a> {
    m: BTreeMap<&'a str, i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<&'a str>,
}

/// An entry of `m`: an integer id, or anything else (ignored) so a peer's odd entry for some
/// other extension does not cost us the whole handshake.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawId {
    Id(i64),
    Other(serde::de::IgnoredAny),
}

impl ExtHandshake {
    /// Ours: ut_metadata under [`OUR_UT_METADATA`], and the metadata size once we have it.
    /// A torrent adds ut_pex and its listen port (see `greet_extensions`).
    pub fn ours(metadata_size: Option<u64>) -> ExtHandshake {
        ExtHandshake {
            ut_metadata: Some(OUR_UT_METADATA),
            ut_pex: None,
            listen_port: None,
            metadata_size,
            client: Some(format!("Rivulet {}", env!("CARGO_PKG_VERSION"))),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let raw = RawOut {
            m: [("ut_metadata", self.ut_metadata), ("ut_pex", self.ut_pex)]
                .into_iter()
                .filter_map(|(name, id)| Some((name, id? as i64)))
                .collect(),
            metadata_size: self.metadata_size.map(|s| s as i64),
            p: self.listen_port.map(i64::from),
            v: self.client.as_deref(),
        };
        serde_bencode::to_bytes(&raw).unwrap_or_default()
    }

    pub fn decode(payload: &[u8]) -> Result<ExtHandshake, ExtensionError> {
        let end = span::value_end(payload)?;
        let raw: Raw = serde_bencode::from_bytes(&payload[..end])
            .map_err(|e| ExtensionError::Decode(one_line(&e.to_string())))?;
        // Id 0 means "disabled"; ids past 255 cannot be sent.
        let id = |name: &[u8]| match raw.m.get(&ByteBuf::from(name.to_vec())) {
            Some(RawId::Id(id)) => u8::try_from(*id).ok().filter(|&id| id != 0),
            _ => None,
        };
        let (ut_metadata, ut_pex) = (id(b"ut_metadata"), id(b"ut_pex"));
        // A port we cannot use is as good as none: the handshake is still worth having.
        let listen_port = match raw.p {
            Some(RawId::Id(p)) => u16::try_from(p).ok().filter(|&p| p != 0),
            _ => None,
        };
        let metadata_size = match raw.metadata_size {
            None => None,
            Some(s) if s > 0 && s as u64 <= MAX_METADATA => Some(s as u64),
            Some(s) => return Err(ExtensionError::MetadataSize(s)),
        };
        Ok(ExtHandshake {
            ut_metadata,
            ut_pex,
            listen_port,
            metadata_size,
            client: raw.v.map(|v| one_line(&String::from_utf8_lossy(&v))),
        })
    }
}

/// A short printable line of peer-supplied text.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_handshake_reads_back() {
        let mut h = ExtHandshake::ours(Some(12345));
        assert_eq!(ExtHandshake::decode(&h.encode()).unwrap(), h);
        h.ut_pex = Some(OUR_UT_PEX);
        h.listen_port = Some(6881);
        assert_eq!(ExtHandshake::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn other_extensions_and_odd_entries_are_skipped() {
        let p = b"d1:md6:ut_pexi2e11:ut_metadatai3e5:otherli1eee13:metadata_sizei99e1:pi6881e1:v5:aria2e";
        let h = ExtHandshake::decode(p).unwrap();
        assert_eq!(h.ut_metadata, Some(3));
        assert_eq!(h.ut_pex, Some(2));
        assert_eq!(h.listen_port, Some(6881));
        assert_eq!(h.metadata_size, Some(99));
        assert_eq!(h.client.as_deref(), Some("aria2"));
    }

    #[test]
    fn a_metadata_size_past_the_limit_is_refused() {
        let p = format!("d13:metadata_sizei{}ee", MAX_METADATA + 1);
        assert!(matches!(
            ExtHandshake::decode(p.as_bytes()),
            Err(ExtensionError::MetadataSize(_))
        ));
        assert!(ExtHandshake::decode(b"d13:metadata_sizei-1ee").is_err());
    }
}
