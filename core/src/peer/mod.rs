//! Peer connections: the wire conversation with one remote peer over any byte stream,
//! driving a [`PeerHandler`]. Knows neither the torrent nor TCP.

mod connection;
mod handler;
mod link;

pub(crate) use connection::{Transport, handshake_out, read_handshake, run};
pub(crate) use handler::{Attached, PeerHandler, PeerLink};
#[cfg(test)]
pub(crate) use link::OUTBOX_CAP;
pub(crate) use link::{DropReason, Outbound, PeerTx, Refused};
