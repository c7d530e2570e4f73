//! The seam between one connection and whoever owns it: the connection code drives a
//! [`PeerHandler`] and knows nothing else (not the torrent, not TCP). A torrent is one
//! handler; a metadata fetcher for magnet links will be another over the same connection code.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use super::link::{DropReason, PeerTx};
use crate::rt::CancelSource;
use crate::wire::{BlockRequest, Message};

/// A handshaken connection offered to its handler.
pub(crate) struct PeerLink {
    pub addr: SocketAddr,
    pub peer_id: [u8; 20],
    /// Unique per connection for the process's life.
    pub conn: u64,
    /// Where the handler queues messages for this peer.
    pub tx: PeerTx,
    /// Dropping it ends the connection.
    pub close: CancelSource,
    pub incoming: bool,
    /// The peer announced the extension protocol (BEP 10) in its handshake.
    pub extensions: bool,
    /// Both sides announced the fast extension (BEP 6) in their handshakes.
    pub fast: bool,
}

/// A connection registered with its handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Attached {
    pub key: u32,
    pub conn: u64,
}

pub(crate) trait PeerHandler: Send + Sync + 'static {
    /// The largest message this peer may send; longer ones end the connection before anything
    /// is allocated.
    fn max_message_len(&self) -> u32;

    /// Takes a handshaken connection, or refuses it.
    fn attach(&self, link: PeerLink) -> Result<Attached, DropReason>;

    /// One message arrived. May wait (back-pressure: pieces waiting for the verifier), which
    /// stops reading from this peer meanwhile.
    fn on_message(
        &self,
        id: Attached,
        msg: Message,
    ) -> impl Future<Output = Result<(), DropReason>> + Send;

    /// The bytes answering a queued request, or `None` if it is no longer to be served.
    fn serve(
        &self,
        id: Attached,
        req: BlockRequest,
    ) -> impl Future<Output = Option<Message>> + Send;

    /// The connection ended.
    fn detach(&self, id: Attached, reason: DropReason);

    /// How long until the peer should be nudged with a keep-alive because it holds requests
    /// we are waiting on and has gone quiet; `None` if no nudge is wanted.
    fn nudge_in(&self, _id: Attached) -> Option<Duration> {
        None
    }

    /// A nudge was sent.
    fn nudged(&self, _id: Attached) {}
}
