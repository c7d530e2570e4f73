//! How a torrent's operations fail.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::plugin::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Storage(Arc<StorageError>),
    #[error("engine stopped")]
    Stopped,
    #[error(transparent)]
    Data(#[from] super::recheck::DataError),
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("read of {len} bytes at {offset} timed out waiting for pieces")]
    Timeout { offset: u64, len: u64 },
    #[error("read at {offset} is past the end of the torrent")]
    OutOfRange { offset: u64 },
    #[error("storage: {0}")]
    Storage(Arc<StorageError>),
    #[error("engine stopped")]
    Stopped,
}
