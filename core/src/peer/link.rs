//! What a connection and its owner share: the outbound queue and why a connection ended.

use std::fmt;

use crate::rt::{Sender, TrySendError};
use crate::wire::{BlockRequest, Message};

/// Work for a connection's writer.
#[derive(Debug)]
pub(crate) enum Outbound {
    Msg(Message),
    /// Read this block from storage and send it, if still allowed.
    Serve(BlockRequest),
}

/// Messages a connection may have queued for its writer. A peer that does not read its socket
/// while we keep sending (a choke/unchoke cycler answered with requests each time) grew an
/// unbounded queue to 10.9 GB RssAnon in 60 s; past this bound the peer is dropped. Legitimate
/// traffic stays far below: at most 512 requests, 512 uploads and a `have` per piece verified
/// while the writer waits on the socket.
pub(crate) const OUTBOX_CAP: usize = 4096;

/// The sending side of one connection's outbound queue.
#[derive(Clone)]
pub(crate) struct PeerTx {
    pub(crate) tx: Sender<Outbound>,
    /// The connection's unique id.
    pub(crate) conn: u64,
}

/// Why an outbound message could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The peer is not reading: drop it.
    Full,
    /// The connection is gone already.
    Closed,
}

impl PeerTx {
    pub fn offer(&self, o: Outbound) -> Result<(), Refused> {
        match self.tx.try_send(o) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Refused::Full),
            Err(TrySendError::Closed(_)) => Err(Refused::Closed),
        }
    }

    pub fn same(&self, other: &PeerTx) -> bool {
        self.conn == other.conn
    }
}

impl fmt::Debug for PeerTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerTx")
    }
}

/// Why a peer connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DropReason {
    Gone,
    ShuttingDown,
    Paused,
    BothComplete,
    Idle,
    NoRoom,
    Banned(String),
    Protocol(String),
    RequestFlood,
    UnrequestedBlocks,
    MessageFlood(&'static str),
    OutboxFull,
    IdleTooLong,
    Io(String),
    Duplicate,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Gone => f.write_str("gone"),
            DropReason::ShuttingDown => f.write_str("shutting down"),
            DropReason::Paused => f.write_str("torrent paused"),
            DropReason::BothComplete => f.write_str("both complete"),
            DropReason::Idle => f.write_str("idle while a newcomer needed its slot"),
            DropReason::NoRoom => f.write_str("no room for another peer"),
            DropReason::Banned(why) => write!(f, "banned: {why}"),
            DropReason::Protocol(why) => f.write_str(why),
            DropReason::RequestFlood => f.write_str("request flood"),
            DropReason::UnrequestedBlocks => {
                f.write_str("too many unrequested or malformed blocks")
            }
            DropReason::MessageFlood(kind) => write!(f, "{kind} flood"),
            DropReason::OutboxFull => f.write_str("not reading what we send"),
            DropReason::IdleTooLong => f.write_str("idle too long"),
            DropReason::Io(e) => f.write_str(e),
            DropReason::Duplicate => f.write_str("already connected"),
        }
    }
}
