//! BEP 3 messages after the handshake: a 4-byte big-endian length, an id, a payload.
//!
//! The length is checked against a caller-given cap before anything is allocated, so a peer
//! announcing a 4 GiB message costs us nothing.

use futures::{AsyncRead, AsyncReadExt};

/// A block request (also used for cancel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockRequest {
    pub piece: u32,
    pub offset: u32,
    pub len: u32,
}

/// A BEP 52 hash request (also the body of its reject): `length` hashes of the layer
/// `base_layer` levels above the blocks of the file with `pieces_root`, from `index`, with
/// `proof_layers` uncle hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashRequest {
    pub pieces_root: [u8; 32],
    pub base_layer: u32,
    pub index: u32,
    pub length: u32,
    pub proof_layers: u32,
}

impl HashRequest {
    const LEN: usize = 48;

    fn parse(p: &[u8]) -> Self {
        HashRequest {
            pieces_root: p[..32].try_into().expect("checked length"),
            base_layer: be32(&p[32..]),
            index: be32(&p[36..]),
            length: be32(&p[40..]),
            proof_layers: be32(&p[44..]),
        }
    }

    fn to_bytes(self) -> Vec<u8> {
        let mut v = self.pieces_root.to_vec();
        for n in [self.base_layer, self.index, self.length, self.proof_layers] {
            v.extend(n.to_be_bytes());
        }
        v
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(Vec<u8>),
    Request(BlockRequest),
    Piece {
        piece: u32,
        offset: u32,
        data: Vec<u8>,
    },
    Cancel(BlockRequest),
    Port(u16),
    /// Fast extension (BEP 6): a piece the sender suggests we fetch.
    Suggest(u32),
    /// Fast extension: the sender has every piece (instead of a bitfield).
    HaveAll,
    /// Fast extension: the sender has no piece (instead of a bitfield).
    HaveNone,
    /// Fast extension: the sender will not serve this request.
    Reject(BlockRequest),
    /// Fast extension: a piece we may request even while choked.
    AllowedFast(u32),
    /// A BEP 10 extension message: the extended id (0 is the extension handshake) and its
    /// payload.
    Extended {
        id: u8,
        payload: Vec<u8>,
    },
    /// BEP 52: the sender wants merkle hashes of a v2 file.
    HashRequest(HashRequest),
    /// BEP 52: the hashes asked for by `req`, then the uncle hashes proving them, lowest first.
    Hashes {
        req: HashRequest,
        hashes: Vec<[u8; 32]>,
    },
    /// BEP 52: the sender will not send the hashes asked for.
    HashReject(HashRequest),
    /// A message id we do not speak; skipped.
    Unknown(u8),
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLong { len: u32, max: u32 },
    #[error("message id {id} has a payload of {len} bytes, expected {want}")]
    BadLength {
        id: u8,
        len: usize,
        want: &'static str,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Message {
    /// Parses one message body (id + payload, without the length prefix).
    pub fn decode(body: Vec<u8>) -> Result<Self, MessageError> {
        let Some(&id) = body.first() else {
            return Ok(Message::KeepAlive);
        };
        let p = &body[1..];
        let want = |ok: bool, want: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(MessageError::BadLength {
                    id,
                    len: p.len(),
                    want,
                })
            }
        };
        let req = |p: &[u8]| BlockRequest {
            piece: be32(p),
            offset: be32(&p[4..]),
            len: be32(&p[8..]),
        };
        Ok(match id {
            0..=3 => {
                want(p.is_empty(), "0")?;
                [
                    Message::Choke,
                    Message::Unchoke,
                    Message::Interested,
                    Message::NotInterested,
                ][id as usize]
                    .clone()
            }
            4 | 0x0D | 0x11 => {
                want(p.len() == 4, "4")?;
                match id {
                    4 => Message::Have(be32(p)),
                    0x0D => Message::Suggest(be32(p)),
                    _ => Message::AllowedFast(be32(p)),
                }
            }
            0x0E | 0x0F => {
                want(p.is_empty(), "0")?;
                if id == 0x0E {
                    Message::HaveAll
                } else {
                    Message::HaveNone
                }
            }
            5 => Message::Bitfield(p.to_vec()),
            6 | 8 | 0x10 => {
                want(p.len() == 12, "12")?;
                match id {
                    6 => Message::Request(req(p)),
                    8 => Message::Cancel(req(p)),
                    _ => Message::Reject(req(p)),
                }
            }
            7 => {
                want(p.len() >= 8, "at least 8")?;
                let (piece, offset) = (be32(p), be32(&p[4..]));
                let mut data = body;
                data.drain(..9);
                Message::Piece {
                    piece,
                    offset,
                    data,
                }
            }
            9 => {
                want(p.len() == 2, "2")?;
                Message::Port(u16::from_be_bytes([p[0], p[1]]))
            }
            20 => {
                want(!p.is_empty(), "at least 1")?;
                let ext = p[0];
                let mut payload = body;
                payload.drain(..2);
                Message::Extended { id: ext, payload }
            }
            21 | 23 => {
                want(p.len() == HashRequest::LEN, "48")?;
                let r = HashRequest::parse(p);
                if id == 21 {
                    Message::HashRequest(r)
                } else {
                    Message::HashReject(r)
                }
            }
            22 => {
                want(
                    p.len() >= HashRequest::LEN && (p.len() - HashRequest::LEN).is_multiple_of(32),
                    "48 and a whole number of 32-byte hashes",
                )?;
                Message::Hashes {
                    req: HashRequest::parse(p),
                    hashes: p[HashRequest::LEN..]
                        .chunks_exact(32)
                        .map(|c| c.try_into().expect("chunk of 32"))
                        .collect(),
                }
            }
            other => Message::Unknown(other),
        })
    }

    /// Appends the wire form (with length prefix) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut put = |id: Option<u8>, parts: &[&[u8]]| {
            let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + id.is_some() as usize;
            out.extend_from_slice(&(len as u32).to_be_bytes());
            if let Some(id) = id {
                out.push(id);
            }
            for p in parts {
                out.extend_from_slice(p);
            }
        };
        let r = |r: &BlockRequest| {
            let mut b = [0u8; 12];
            b[..4].copy_from_slice(&r.piece.to_be_bytes());
            b[4..8].copy_from_slice(&r.offset.to_be_bytes());
            b[8..].copy_from_slice(&r.len.to_be_bytes());
            b
        };
        match self {
            Message::KeepAlive => put(None, &[]),
            Message::Choke => put(Some(0), &[]),
            Message::Unchoke => put(Some(1), &[]),
            Message::Interested => put(Some(2), &[]),
            Message::NotInterested => put(Some(3), &[]),
            Message::Have(i) => put(Some(4), &[&i.to_be_bytes()]),
            Message::Bitfield(b) => put(Some(5), &[b]),
            Message::Request(q) => put(Some(6), &[&r(q)]),
            Message::Piece {
                piece,
                offset,
                data,
            } => put(
                Some(7),
                &[&piece.to_be_bytes(), &offset.to_be_bytes(), data],
            ),
            Message::Cancel(q) => put(Some(8), &[&r(q)]),
            Message::Port(p) => put(Some(9), &[&p.to_be_bytes()]),
            Message::Suggest(i) => put(Some(0x0D), &[&i.to_be_bytes()]),
            Message::HaveAll => put(Some(0x0E), &[]),
            Message::HaveNone => put(Some(0x0F), &[]),
            Message::Reject(q) => put(Some(0x10), &[&r(q)]),
            Message::AllowedFast(i) => put(Some(0x11), &[&i.to_be_bytes()]),
            Message::Extended { id, payload } => put(Some(20), &[&[*id], payload]),
            Message::HashRequest(h) => put(Some(21), &[&h.to_bytes()]),
            Message::Hashes { req, hashes } => {
                put(Some(22), &[&req.to_bytes(), hashes.as_flattened()])
            }
            Message::HashReject(h) => put(Some(23), &[&h.to_bytes()]),
            Message::Unknown(id) => put(Some(*id), &[]),
        }
    }

    /// The message's name, for logs and flood reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::KeepAlive => "keep-alive",
            Message::Choke => "choke",
            Message::Unchoke => "unchoke",
            Message::Interested => "interested",
            Message::NotInterested => "not-interested",
            Message::Have(_) => "have",
            Message::Bitfield(_) => "bitfield",
            Message::Request(_) => "request",
            Message::Piece { .. } => "piece",
            Message::Cancel(_) => "cancel",
            Message::Port(_) => "port",
            Message::Suggest(_) => "suggest",
            Message::HaveAll => "have-all",
            Message::HaveNone => "have-none",
            Message::Reject(_) => "reject-request",
            Message::AllowedFast(_) => "allowed-fast",
            Message::Extended { .. } => "extended",
            Message::HashRequest(_) => "hash-request",
            Message::Hashes { .. } => "hashes",
            Message::HashReject(_) => "hash-reject",
            Message::Unknown(_) => "unknown-message",
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }

    /// Reads one message, refusing any whose length exceeds `max_len` before allocating.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R, max_len: u32) -> Result<Self, MessageError> {
        let mut len = [0u8; 4];
        r.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len);
        if len > max_len {
            return Err(MessageError::TooLong { len, max: max_len });
        }
        let mut body = vec![0u8; len as usize];
        r.read_exact(&mut body).await?;
        Self::decode(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all() -> Vec<Message> {
        let q = BlockRequest {
            piece: 7,
            offset: 16384,
            len: 16384,
        };
        let h = HashRequest {
            pieces_root: [7; 32],
            base_layer: 0,
            index: 512,
            length: 512,
            proof_layers: 3,
        };
        vec![
            Message::KeepAlive,
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have(42),
            Message::Bitfield(vec![0xff, 0x80]),
            Message::Request(q),
            Message::Piece {
                piece: 1,
                offset: 2,
                data: vec![9; 100],
            },
            Message::Cancel(q),
            Message::Port(6881),
            Message::Suggest(3),
            Message::HaveAll,
            Message::HaveNone,
            Message::Reject(q),
            Message::AllowedFast(5),
            Message::Extended {
                id: 3,
                payload: b"d8:msg_typei0e5:piecei0ee".to_vec(),
            },
            Message::HashRequest(h),
            Message::Hashes {
                req: h,
                hashes: vec![[1; 32], [2; 32], [3; 32]],
            },
            Message::Hashes {
                req: h,
                hashes: Vec::new(),
            },
            Message::HashReject(h),
        ]
    }

    #[test]
    fn round_trips() {
        for m in all() {
            let wire = m.encode();
            let got = crate::rt::block_on(Message::read(&mut wire.as_slice(), 1 << 20)).unwrap();
            assert_eq!(got, m);
        }
    }

    #[test]
    fn refuses_huge_length_before_allocating() {
        let wire = [0xff, 0xff, 0xff, 0xff, 7];
        let e = crate::rt::block_on(Message::read(&mut wire.as_slice(), 1 << 17)).unwrap_err();
        assert!(matches!(e, MessageError::TooLong { len: u32::MAX, .. }));
    }

    #[test]
    fn refuses_bad_payload_lengths() {
        assert!(Message::decode(vec![4, 0, 0]).is_err());
        assert!(Message::decode(vec![6; 5]).is_err());
        assert!(Message::decode(vec![7, 0, 0, 0]).is_err());
        assert!(Message::decode(vec![1, 0]).is_err());
        assert!(Message::decode(vec![0x0E, 0]).is_err());
        assert!(Message::decode(vec![0x10; 12]).is_err());
        assert!(Message::decode(vec![0x11, 0, 0]).is_err());
        assert!(
            Message::decode(vec![22; 48]).is_err(),
            "47 bytes of hashes header"
        );
        assert!(
            Message::decode(vec![22; 49 + 31]).is_err(),
            "a hash cut short"
        );
        assert!(matches!(
            Message::decode(vec![22; 49 + 64]),
            Ok(Message::Hashes { hashes, .. }) if hashes.len() == 2
        ));
    }

    proptest! {
        #[test]
        fn decode_never_panics(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Message::decode(body);
        }

        #[test]
        fn read_never_panics(wire in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = crate::rt::block_on(Message::read(&mut wire.as_slice(), 1 << 17));
        }
    }
}
