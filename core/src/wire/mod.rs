//! The BEP 3 peer wire protocol: handshake and length-prefixed messages, and the BEP 10
//! extension protocol with BEP 9 metadata exchange and BEP 11 peer exchange on top.
//!
//! Pure encoding and decoding with hard limits; no sockets here beyond generic async I/O.

pub mod extension;
pub mod handshake;
pub mod message;
pub mod pex;
pub mod ut_metadata;

pub use extension::{ExtHandshake, ExtensionError};

pub use handshake::{Handshake, HandshakeError};
pub use message::{BlockRequest, HashRequest, Message, MessageError};
pub use pex::{PexError, PexMsg, PexPeer};
pub use ut_metadata::{MetadataMsg, MetadataMsgError};

/// The size of a block request: the de facto standard every client accepts.
pub const BLOCK_SIZE: u32 = 16 * 1024;
