//! The 68-byte BEP 3 handshake that opens every peer connection.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
pub const HANDSHAKE_LEN: usize = 68;
/// Where the fast extension (BEP 6) is announced in the reserved bytes.
const FAST_BYTE: usize = 7;
const FAST_BIT: u8 = 0x04;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: [u8; 8],
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("not a BitTorrent handshake")]
    NotBitTorrent,
    #[error("peer wants another torrent")]
    WrongInfoHash,
    #[error("connection to ourselves")]
    SelfConnection,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Handshake {
    /// Ours: announces the extension protocol (BEP 10) and the fast extension (BEP 6), which
    /// we always speak.
    pub fn new(info_hash: [u8; 20], peer_id: [u8; 20]) -> Self {
        let mut reserved = [0; 8];
        reserved[super::extension::RESERVED_BYTE] |= super::extension::RESERVED_BIT;
        reserved[FAST_BYTE] |= FAST_BIT;
        Handshake {
            reserved,
            info_hash,
            peer_id,
        }
    }

    /// Whether the peer speaks the extension protocol (BEP 10).
    pub fn extensions(&self) -> bool {
        self.reserved[super::extension::RESERVED_BYTE] & super::extension::RESERVED_BIT != 0
    }

    /// Whether the peer speaks the fast extension (BEP 6).
    pub fn fast(&self) -> bool {
        self.reserved[FAST_BYTE] & FAST_BIT != 0
    }

    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut b = [0u8; HANDSHAKE_LEN];
        b[0] = 19;
        b[1..20].copy_from_slice(PROTOCOL);
        b[20..28].copy_from_slice(&self.reserved);
        b[28..48].copy_from_slice(&self.info_hash);
        b[48..68].copy_from_slice(&self.peer_id);
        b
    }

    pub fn decode(b: &[u8; HANDSHAKE_LEN]) -> Result<Self, HandshakeError> {
        if b[0] != 19 || &b[1..20] != PROTOCOL {
            return Err(HandshakeError::NotBitTorrent);
        }
        let mut h = Handshake::new([0; 20], [0; 20]);
        h.reserved.copy_from_slice(&b[20..28]);
        h.info_hash.copy_from_slice(&b[28..48]);
        h.peer_id.copy_from_slice(&b[48..68]);
        Ok(h)
    }

    pub async fn write<W: AsyncWrite + Unpin>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(&self.encode()).await?;
        w.flush().await
    }

    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Self, HandshakeError> {
        let mut b = [0u8; HANDSHAKE_LEN];
        r.read_exact(&mut b).await?;
        Self::decode(&b)
    }

    /// Checks the remote handshake against the torrent we serve and our own id.
    pub fn check(&self, info_hash: &[u8; 20], own_id: &[u8; 20]) -> Result<(), HandshakeError> {
        if &self.info_hash != info_hash {
            return Err(HandshakeError::WrongInfoHash);
        }
        if &self.peer_id == own_id {
            return Err(HandshakeError::SelfConnection);
        }
        Ok(())
    }
}

/// A short printable client name from an Azureus-style peer id (`-AR1360-...` → `AR1360`).
pub fn client_name(peer_id: &[u8; 20]) -> String {
    if peer_id[0] == b'-'
        && peer_id[7] == b'-'
        && peer_id[1..7].iter().all(u8::is_ascii_alphanumeric)
    {
        String::from_utf8_lossy(&peer_id[1..7]).into_owned()
    } else {
        peer_id
            .iter()
            .take(8)
            .filter(|b| b.is_ascii_graphic())
            .map(|&b| b as char)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let h = Handshake::new([1; 20], [2; 20]);
        let d = Handshake::decode(&h.encode()).unwrap();
        assert_eq!(d, h);
        assert!(matches!(
            d.check(&[9; 20], &[3; 20]),
            Err(HandshakeError::WrongInfoHash)
        ));
        assert!(matches!(
            d.check(&[1; 20], &[2; 20]),
            Err(HandshakeError::SelfConnection)
        ));
        assert!(d.check(&[1; 20], &[3; 20]).is_ok());
        let mut bad = h.encode();
        bad[5] = b'x';
        assert!(matches!(
            Handshake::decode(&bad),
            Err(HandshakeError::NotBitTorrent)
        ));
        assert_eq!(client_name(b"-AR1360-abcdefghijkl"), "AR1360");
    }
}
