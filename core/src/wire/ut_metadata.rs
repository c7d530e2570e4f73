//! BEP 9 metadata exchange: the info dictionary travels in 16 KiB pieces as ut_metadata
//! extension messages: a bencoded header (`msg_type`, `piece`, and `total_size` for data),
//! followed by the piece's bytes in a data message.

use serde::{Deserialize, Serialize};

use super::extension::{MAX_METADATA, one_line};
use crate::metainfo::span;

/// Every metadata piece is this long except the last.
pub const METADATA_PIECE: usize = 16 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataMsg {
    Request {
        piece: u32,
    },
    Data {
        piece: u32,
        total_size: u64,
        data: Vec<u8>,
    },
    Reject {
        piece: u32,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataMsgError {
    #[error("ut_metadata: {0}")]
    Structure(#[from] span::SpanError),
    #[error("ut_metadata: {0}")]
    Decode(String),
    #[error("ut_metadata: unknown message type {0}")]
    Type(i64),
    #[error("ut_metadata: piece {0} is out of range")]
    Piece(i64),
    #[error("ut_metadata: total size {0} is out of range")]
    TotalSize(i64),
    #[error("ut_metadata: data piece of {0} bytes is longer than 16 KiB")]
    DataTooLong(usize),
}

#[derive(Deserialize, Serialize)]
struct Header {
    msg_type: i64,
    piece: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_size: Option<i64>,
}

/// How many pieces an info dictionary of `size` bytes travels in.
pub fn piece_count(size: u64) -> u32 {
    size.div_ceil(METADATA_PIECE as u64) as u32
}

/// Our answer to a request for metadata piece `piece` of `info` (empty when we have none).
pub fn answer(info: &[u8], piece: u32) -> MetadataMsg {
    let start = piece as usize * METADATA_PIECE;
    if info.is_empty() || start >= info.len() {
        return MetadataMsg::Reject { piece };
    }
    let end = (start + METADATA_PIECE).min(info.len());
    MetadataMsg::Data {
        piece,
        total_size: info.len() as u64,
        data: info[start..end].to_vec(),
    }
}

impl MetadataMsg {
    pub fn encode(&self) -> Vec<u8> {
        let (msg_type, piece, total_size, data) = match self {
            MetadataMsg::Request { piece } => (0, *piece, None, &[][..]),
            MetadataMsg::Data {
                piece,
                total_size,
                data,
            } => (1, *piece, Some(*total_size as i64), &data[..]),
            MetadataMsg::Reject { piece } => (2, *piece, None, &[][..]),
        };
        let header = Header {
            msg_type,
            piece: piece as i64,
            total_size,
        };
        let mut out = serde_bencode::to_bytes(&header).unwrap_or_default();
        out.extend_from_slice(data);
        out
    }

    pub fn decode(payload: &[u8]) -> Result<MetadataMsg, MetadataMsgError> {
        let end = span::value_end(payload)?;
        let h: Header = serde_bencode::from_bytes(&payload[..end])
            .map_err(|e| MetadataMsgError::Decode(one_line(&e.to_string())))?;
        let max_piece = piece_count(MAX_METADATA) as i64;
        if !(0..max_piece).contains(&h.piece) {
            return Err(MetadataMsgError::Piece(h.piece));
        }
        let piece = h.piece as u32;
        match h.msg_type {
            0 => Ok(MetadataMsg::Request { piece }),
            1 => {
                let total = h.total_size.unwrap_or(-1);
                if total <= 0 || total as u64 > MAX_METADATA {
                    return Err(MetadataMsgError::TotalSize(total));
                }
                let data = &payload[end..];
                if data.len() > METADATA_PIECE {
                    return Err(MetadataMsgError::DataTooLong(data.len()));
                }
                Ok(MetadataMsg::Data {
                    piece,
                    total_size: total as u64,
                    data: data.to_vec(),
                })
            }
            2 => Ok(MetadataMsg::Reject { piece }),
            other => Err(MetadataMsgError::Type(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back() {
        for m in [
            MetadataMsg::Request { piece: 3 },
            MetadataMsg::Reject { piece: 0 },
            MetadataMsg::Data {
                piece: 1,
                total_size: 20000,
                data: vec![7; 3616],
            },
        ] {
            assert_eq!(MetadataMsg::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn hostile_headers_are_refused() {
        let too_big = format!(
            "d8:msg_typei1e5:piecei0e10:total_sizei{}ee",
            MAX_METADATA + 1
        );
        assert!(matches!(
            MetadataMsg::decode(too_big.as_bytes()),
            Err(MetadataMsgError::TotalSize(_))
        ));
        assert!(matches!(
            MetadataMsg::decode(b"d8:msg_typei0e5:piecei-1ee"),
            Err(MetadataMsgError::Piece(-1))
        ));
        assert!(matches!(
            MetadataMsg::decode(b"d8:msg_typei7e5:piecei0ee"),
            Err(MetadataMsgError::Type(7))
        ));
        let mut long = b"d8:msg_typei1e5:piecei0e10:total_sizei99999ee".to_vec();
        long.extend(vec![0; METADATA_PIECE + 1]);
        assert!(matches!(
            MetadataMsg::decode(&long),
            Err(MetadataMsgError::DataTooLong(_))
        ));
    }
}
