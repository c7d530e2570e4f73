//! The torrent's side of the extension protocol (BEP 10): our extension handshake to peers
//! that speak it, theirs in, serving our info dictionary to peers fetching metadata (BEP 9)
//! from a magnet link, and routing peer exchange (BEP 11) messages to `pex.rs`.

use std::time::Instant;

use super::TorrentState;
use super::pex::PeerPex;
use crate::peer::DropReason;
use crate::plugin::PeerKey;
use crate::torrent::effects::Effects;
use crate::wire::extension::{HANDSHAKE_ID, OUR_UT_METADATA, OUR_UT_PEX};
use crate::wire::{ExtHandshake, Message, MetadataMsg, ut_metadata};

/// Metadata pieces served per connection, as a multiple of the metadata's piece count: a peer
/// fetches it once (a retry or two at most); asking on and on only costs us upload.
const SERVE_ROUNDS: u32 = 4;

/// What we know of a peer's extensions.
#[derive(Debug, Default)]
pub(crate) struct PeerExtensions {
    /// The id the peer wants ut_metadata messages sent under.
    pub ut_metadata: Option<u8>,
    /// The id the peer wants ut_pex messages sent under (never set for a private torrent).
    pub ut_pex: Option<u8>,
    /// The port it listens on, from its handshake's `p`.
    pub listen_port: Option<u16>,
    /// Metadata pieces served to it so far.
    pub served: u32,
    pub pex: PeerPex,
}

impl TorrentState {
    /// Sends our extension handshake to a peer that announced the extension protocol: with
    /// ut_pex unless the torrent is private (BEP 27), and the port we listen on, so a peer we
    /// dialled can pass us on.
    pub fn greet_extensions(&mut self, key: PeerKey, listen_port: u16, fx: &mut Effects) {
        let size = self.meta.info_bytes.len() as u64;
        let private = self.meta.private;
        let Some(peer) = self.swarm.peers.get(&key) else {
            return;
        };
        let mut ours = ExtHandshake::ours((size > 0).then_some(size));
        ours.ut_pex = (!private).then_some(OUR_UT_PEX);
        ours.listen_port = Some(listen_port).filter(|&p| p != 0);
        fx.send(
            &peer.tx,
            Message::Extended {
                id: HANDSHAKE_ID,
                payload: ours.encode(),
            },
        );
    }

    /// One extension message from peer `key`.
    pub(super) fn on_extended(
        &mut self,
        key: PeerKey,
        id: u8,
        payload: &[u8],
        fx: &mut Effects,
    ) -> Result<(), DropReason> {
        let info = self.meta.info_bytes.clone();
        let private = self.meta.private;
        let Some(peer) = self.swarm.peers.get_mut(&key) else {
            return Ok(());
        };
        match id {
            HANDSHAKE_ID => {
                // A handshake we cannot read only means we will not talk extensions with it.
                let h = ExtHandshake::decode(payload)
                    .map_err(|e| tracing::debug!("{}: {e}", peer.addr))
                    .unwrap_or_default();
                peer.ext.ut_metadata = h.ut_metadata;
                peer.ext.ut_pex = h.ut_pex.filter(|_| !private);
                peer.ext.listen_port = h.listen_port;
                if peer.ext.ut_pex.is_some() {
                    peer.ext.pex.start(Instant::now());
                }
            }
            OUR_UT_PEX => self.on_pex(key, payload, Instant::now(), fx),
            OUR_UT_METADATA => {
                let msg = MetadataMsg::decode(payload)
                    .map_err(|e| DropReason::Protocol(e.to_string()))?;
                let (MetadataMsg::Request { piece }, Some(their_id)) = (msg, peer.ext.ut_metadata)
                else {
                    return Ok(());
                };
                let limit = ut_metadata::piece_count(info.len() as u64).max(1) * SERVE_ROUNDS;
                let answer = if peer.ext.served < limit {
                    peer.ext.served += 1;
                    ut_metadata::answer(&info, piece)
                } else {
                    MetadataMsg::Reject { piece }
                };
                fx.send(
                    &peer.tx,
                    Message::Extended {
                        id: their_id,
                        payload: answer.encode(),
                    },
                );
            }
            _ => {}
        }
        Ok(())
    }
}
