//! What a change of torrent state asks the world to do, carried out after the lock is released.
//!
//! State methods never send, write or wake anything themselves: they push [`Effect`]s into an
//! [`Effects`] list that the torrent's runner carries out once the lock is gone. That keeps the
//! lock short (no socket, channel or file under it) and lets the state be tested with no
//! sockets at all: a test calls a method and looks at the effects.

use std::net::SocketAddr;

use crate::events::Event;
use crate::peer::{Outbound, PeerTx, Refused};
use crate::rt::Sender;
use crate::wire::{BlockRequest, Message};

use super::assembly::PieceAssembly;
use super::swarm::PeerSource;

#[derive(Debug)]
pub(crate) enum Effect {
    Send(PeerTx, Outbound),
    Emit(Event),
    /// Wake a waiting read (its pieces are ready, or something it waits on changed).
    Wake(Sender<()>),
    /// The download completed: tell the trackers, save the resume file.
    Completed,
    /// Peer addresses learnt from a peer: candidates to add and dial.
    Found(PeerSource, Vec<SocketAddr>),
}

/// Effects collected under the lock, in the order they were decided.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub list: Vec<Effect>,
    /// A whole piece to hash and store.
    pub verify: Vec<PieceAssembly>,
    /// Blocks of spilled pieces to write to storage, each reported back when written.
    pub spill: Vec<SpillBlock>,
}

/// A block of a piece too long to hold in memory, on its way to storage.
pub(crate) struct SpillBlock {
    pub piece: u32,
    /// The assembly it belongs to ([`PieceAssembly::id`]).
    pub assembly: u64,
    pub offset: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for SpillBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (piece, offset, len) = (self.piece, self.offset, self.data.len());
        write!(f, "SpillBlock({piece}, {offset}+{len})")
    }
}

impl Effects {
    pub fn send(&mut self, tx: &PeerTx, m: Message) {
        self.list.push(Effect::Send(tx.clone(), Outbound::Msg(m)));
    }

    pub fn serve(&mut self, tx: &PeerTx, r: BlockRequest) {
        self.list.push(Effect::Send(tx.clone(), Outbound::Serve(r)));
    }

    pub fn emit(&mut self, e: Event) {
        self.list.push(Effect::Emit(e));
    }

    pub fn found(&mut self, source: PeerSource, addrs: Vec<SocketAddr>) {
        self.list.push(Effect::Found(source, addrs));
    }

    pub fn wake(&mut self, tx: &Sender<()>) {
        self.list.push(Effect::Wake(tx.clone()));
    }

    /// Messages queued for peers, for tests.
    #[cfg(test)]
    pub fn sent(&self) -> Vec<&Message> {
        self.list
            .iter()
            .filter_map(|e| match e {
                Effect::Send(_, Outbound::Msg(m)) => Some(m),
                _ => None,
            })
            .collect()
    }

    #[cfg(test)]
    pub fn events(&self) -> Vec<&Event> {
        self.list
            .iter()
            .filter_map(|e| match e {
                Effect::Emit(ev) => Some(ev),
                _ => None,
            })
            .collect()
    }
}

/// What carrying out the effects found: peers whose queue overflowed must be dropped.
#[derive(Default)]
pub(crate) struct Outcome {
    pub overflowed: Vec<PeerTx>,
    pub completed: bool,
    pub found: Vec<(PeerSource, Vec<SocketAddr>)>,
}

/// Carries out sends, wakes and events; returns what needs the state again.
pub(crate) fn carry_out(list: Vec<Effect>, events: &crate::events::EventSink) -> Outcome {
    let mut out = Outcome::default();
    for e in list {
        match e {
            Effect::Send(tx, o) => {
                if let Err(Refused::Full) = tx.offer(o)
                    && !out.overflowed.iter().any(|t| t.same(&tx))
                {
                    out.overflowed.push(tx);
                }
            }
            Effect::Emit(ev) => events.emit(ev),
            Effect::Wake(w) => {
                let _ = w.try_send(());
            }
            Effect::Completed => out.completed = true,
            Effect::Found(source, addrs) => out.found.push((source, addrs)),
        }
    }
    out
}
