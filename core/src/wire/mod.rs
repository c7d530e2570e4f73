//! The BEP 3 peer wire protocol: handshake and length-prefixed messages.
//!
//! Pure encoding and decoding with hard limits; no sockets here beyond generic async I/O.

pub mod handshake;
pub mod message;

pub use handshake::{Handshake, HandshakeError};
pub use message::{BlockRequest, Message, MessageError};

/// The size of a block request: the de facto standard every client accepts.
pub const BLOCK_SIZE: u32 = 16 * 1024;
