//! Peer connections: dialing and accepting, the handshake, and one reader and one writer task
//! per connection. Decisions are made by the torrent's state; this module moves bytes.

mod connection;

pub(crate) use connection::{connect, listen};
