//! The fetch as the handler of its connections: our extension handshake out, theirs in,
//! requests spread over the peers that have the metadata, pieces in, the whole hashed off the
//! async threads, and the verdict carried out (liars banned and dropped, the rest asked again).

use std::time::Instant;

use sha1::{Digest, Sha1};

use super::assembly::{Fault, Verdict};
use super::layers::{self, LayerFault, LayerFetch};
use super::{Fetch, FetchPeer, Fetched, MAX_TIMEOUTS, PIPELINE};
use crate::events::Event;
use crate::metainfo::{Metainfo, merkle, torrent_file};
use crate::peer::{Attached, DropReason, PeerHandler, PeerLink};
use crate::torrent::MessageBudget;
use crate::wire::extension::{HANDSHAKE_ID, OUR_UT_METADATA};
use crate::wire::{BlockRequest, ExtHandshake, Message, MetadataMsg};

/// A metadata piece with its header, or a bitfield of a torrent of up to a million pieces.
const MAX_MESSAGE: u32 = 128 * 1024 + 9;

impl Fetch {
    /// Sends requests to every peer that has room in its pipeline.
    fn fill(&self, s: &mut super::FetchState) {
        let now = Instant::now();
        if let Some((_, lf)) = &mut s.layers {
            for (conn, p) in &s.peers {
                while lf.in_flight(*conn) < layers::PIPELINE {
                    let Some(req) = lf.next_request(*conn, now) else {
                        break;
                    };
                    let msg = crate::peer::Outbound::Msg(Message::HashRequest(req));
                    if p.tx.offer(msg).is_err() {
                        lf.release_conn(*conn);
                        break;
                    }
                }
            }
            return;
        }
        let offered = |size| {
            s.peers
                .values()
                .any(|p| p.ut_metadata.is_some() && p.size == Some(size))
        };
        if s.asm.size().is_some_and(|size| !offered(size)) {
            // Whoever named this size is gone (a liar dropped, say): take another's.
            s.asm.reset();
        }
        if s.asm.size().is_none() {
            // Adopt the size of a connected peer we have not banned.
            if let Some(size) = s.peers.values().find_map(|p| p.ut_metadata.and(p.size)) {
                s.asm.adopt_size(size);
            }
        }
        let size = s.asm.size();
        let conns: Vec<u64> = s
            .peers
            .iter()
            .filter(|(_, p)| p.ut_metadata.is_some() && p.size.is_some() && p.size == size)
            .map(|(c, _)| *c)
            .collect();
        for conn in conns {
            while s.asm.in_flight(conn) < PIPELINE {
                let Some(piece) = s.asm.next_request(conn, now) else {
                    break;
                };
                let p = &s.peers[&conn];
                let msg = Message::Extended {
                    id: p.ut_metadata.unwrap_or_default(),
                    payload: MetadataMsg::Request { piece }.encode(),
                };
                if p.tx.offer(crate::peer::Outbound::Msg(msg)).is_err() {
                    s.asm.release_conn(conn);
                    break;
                }
            }
        }
    }

    /// Drops connection `conn` (ending it) and gives its requests to others.
    fn drop_peer(&self, s: &mut super::FetchState, conn: u64, reason: &DropReason) {
        if let Some(p) = s.peers.remove(&conn) {
            tracing::debug!("metadata: dropped {}: {reason}", p.addr);
            self.events.emit(Event::PeerDropped {
                addr: p.addr.to_string(),
                reason: reason.to_string(),
            });
        }
        s.asm.release_conn(conn);
        if let Some((_, lf)) = &mut s.layers {
            lf.release_conn(conn);
        }
    }

    pub(super) fn on_tick(&self, now: Instant) {
        let mut s = self.state();
        let mut late = s.asm.timeouts(now);
        if let Some((_, lf)) = &mut s.layers {
            late.extend(lf.timeouts(now));
        }
        for conn in late {
            let gone = s.peers.get_mut(&conn).is_some_and(|p| {
                p.timeouts += 1;
                p.timeouts >= MAX_TIMEOUTS
            });
            if gone {
                self.drop_peer(
                    &mut s,
                    conn,
                    &DropReason::Protocol("metadata or hash requests unanswered".into()),
                );
            }
        }
        self.fill(&mut s);
    }

    /// Hashes a complete copy off the async threads and carries out the verdict.
    async fn check(&self, whole: Vec<u8>) {
        let (want, want_v2) = (self.info_hash.0, self.info_hash_v2);
        let (ok, whole) = crate::rt::blocking(move || {
            let ok = match want_v2 {
                Some(v2) => merkle::sha256(&whole) == v2,
                None => <[u8; 20]>::from(Sha1::digest(&whole)) == want,
            };
            (ok, whole)
        })
        .await;
        let verdict = self.state().asm.verified(ok, whole);
        match verdict {
            Verdict::Verified { info, liars } => {
                self.ban(&liars, "sent wrong metadata");
                match self.info_hash_v2 {
                    Some(_) => self.start_layers(info).await,
                    None => {
                        let _ = self.done.try_send(Fetched {
                            info,
                            layers: Vec::new(),
                        });
                    }
                }
            }
            Verdict::Failed { liars } => {
                tracing::info!("metadata for {} failed its hash check", self.info_hash);
                self.ban(&liars, "sent wrong metadata");
                let mut s = self.state();
                self.fill(&mut s);
            }
        }
    }

    /// A v2 torrent's info dictionary is verified: fetch the piece layers it lacks, if any.
    /// One that does not parse, or whose layers could not be held, ends the fetch as it is:
    /// adding it then says why.
    pub(super) async fn start_layers(&self, info: Vec<u8>) {
        let (info, fetch) = crate::rt::blocking(move || {
            let fetch = Metainfo::from_bytes(&torrent_file(&info, &[]))
                .ok()
                .and_then(|m| LayerFetch::new(&m).ok());
            (info, fetch)
        })
        .await;
        match fetch {
            Some(lf) if lf.finished().is_none() => {
                let mut s = self.state();
                s.layers = Some((info, lf));
                self.fill(&mut s);
            }
            _ => {
                let _ = self.done.try_send(Fetched {
                    info,
                    layers: Vec::new(),
                });
            }
        }
    }

    /// An answer to a hash request: kept if its proof holds; a wrong one bans its sender.
    fn on_layer_hashes(
        &self,
        conn: u64,
        req: &crate::wire::HashRequest,
        hashes: &[merkle::Hash],
    ) -> Result<(), DropReason> {
        let mut s = self.state();
        let Some((_, lf)) = &mut s.layers else {
            return Err(DropReason::Protocol("hashes we did not ask for".into()));
        };
        match lf.on_hashes(conn, req, hashes) {
            Ok(()) => {}
            Err(LayerFault::Unrequested) => {
                return Err(DropReason::Protocol("hashes we did not ask for".into()));
            }
            Err(LayerFault::BadProof) => {
                let addr = s.peers.get(&conn).map(|p| p.addr);
                drop(s);
                self.ban(&addr.into_iter().collect::<Vec<_>>(), "sent wrong hashes");
                return Err(DropReason::Banned("sent wrong hashes".into()));
            }
        }
        match lf.finished() {
            Some(found) => {
                let (info, _) = s.layers.take().expect("fetching layers");
                self.events.emit(Event::PieceLayersFetched {
                    files: found.len(),
                    hashes: found.iter().map(|(_, l)| l.len()).sum(),
                });
                let _ = self.done.try_send(Fetched {
                    info,
                    layers: found,
                });
            }
            None => self.fill(&mut s),
        }
        Ok(())
    }

    fn ban(&self, addrs: &[std::net::SocketAddr], why: &str) {
        let mut s = self.state();
        for addr in addrs {
            s.swarm.banned.insert(addr.ip());
            self.events.emit(Event::PeerBanned {
                addr: addr.to_string(),
                reason: why.to_string(),
            });
            let conns: Vec<u64> = s
                .peers
                .iter()
                .filter(|(_, p)| p.addr.ip() == addr.ip())
                .map(|(c, _)| *c)
                .collect();
            for c in conns {
                self.drop_peer(&mut s, c, &DropReason::Banned(why.into()));
            }
        }
    }

    fn on_metadata(&self, conn: u64, msg: MetadataMsg) -> Result<Option<Vec<u8>>, DropReason> {
        let mut s = self.state();
        let Some(p) = s.peers.get(&conn) else {
            return Err(DropReason::Gone);
        };
        let (addr, their_id) = (p.addr, p.ut_metadata);
        match msg {
            // We have nothing to give yet.
            MetadataMsg::Request { piece } => {
                if let Some(id) = their_id {
                    let reject = Message::Extended {
                        id,
                        payload: MetadataMsg::Reject { piece }.encode(),
                    };
                    let _ = p.tx.offer(crate::peer::Outbound::Msg(reject));
                }
                Ok(None)
            }
            MetadataMsg::Reject { piece } => {
                s.asm.release_piece(conn, piece);
                // It does not have it after all: ask others.
                if let Some(p) = s.peers.get_mut(&conn) {
                    p.size = None;
                }
                self.fill(&mut s);
                Ok(None)
            }
            MetadataMsg::Data {
                piece,
                total_size,
                data,
            } => match s.asm.on_data(conn, addr, piece, total_size, data) {
                Ok(whole) => {
                    if whole.is_none() {
                        self.fill(&mut s);
                    }
                    Ok(whole)
                }
                Err(Fault::WrongSize) => Err(DropReason::Protocol(format!(
                    "metadata piece {piece} of the wrong size"
                ))),
                Err(Fault::Unrequested) => Err(DropReason::UnrequestedBlocks),
            },
        }
    }
}

impl PeerHandler for Fetch {
    fn max_message_len(&self) -> u32 {
        MAX_MESSAGE
    }

    fn attach(&self, link: PeerLink) -> Result<Attached, DropReason> {
        let mut s = self.state();
        if !link.extensions {
            // It cannot have what we want: no point dialing it again during this fetch.
            s.swarm.known.remove(&link.addr);
            return Err(DropReason::Protocol(
                "no extension protocol, so no metadata".into(),
            ));
        }
        if self.stopped.is_cancelled() {
            return Err(DropReason::ShuttingDown);
        }
        if s.swarm.banned.contains(&link.addr.ip()) {
            return Err(DropReason::Banned("banned earlier".into()));
        }
        let hello = Message::Extended {
            id: HANDSHAKE_ID,
            payload: ExtHandshake::ours(None).encode(),
        };
        if link.tx.offer(crate::peer::Outbound::Msg(hello)).is_err() {
            return Err(DropReason::Gone);
        }
        self.events.emit(Event::PeerConnected {
            addr: link.addr.to_string(),
            client: crate::wire::handshake::client_name(&link.peer_id),
        });
        s.peers.insert(
            link.conn,
            FetchPeer {
                addr: link.addr,
                tx: link.tx,
                _close: link.close,
                ut_metadata: None,
                size: None,
                control: MessageBudget::new(200, 100),
                timeouts: 0,
                incoming: link.incoming,
            },
        );
        Ok(Attached {
            key: 0,
            conn: link.conn,
        })
    }

    async fn on_message(&self, id: Attached, msg: Message) -> Result<(), DropReason> {
        let whole = {
            let mut s = self.state();
            let Some(p) = s.peers.get_mut(&id.conn) else {
                return Err(DropReason::Gone);
            };
            // Metadata pieces are answers to our requests (an unasked one drops the peer), so
            // only the rest counts against the budget: a 16 MiB info dictionary is 1024 pieces.
            let answer = matches!(
                msg,
                Message::Extended {
                    id: OUR_UT_METADATA,
                    ..
                } | Message::Hashes { .. }
            );
            if !answer && !p.control.take(Instant::now()) {
                return Err(DropReason::MessageFlood(msg.kind()));
            }
            match msg {
                Message::Extended {
                    id: HANDSHAKE_ID,
                    payload,
                } => {
                    let h = ExtHandshake::decode(&payload)
                        .map_err(|e| DropReason::Protocol(e.to_string()))?;
                    p.ut_metadata = h.ut_metadata;
                    p.size = h.metadata_size;
                    let listens = h
                        .listen_port
                        .filter(|port| p.incoming && *port != 0)
                        .map(|port| std::net::SocketAddr::new(p.addr.ip(), port));
                    if let Some(addr) = listens
                        && s.listening.len() < super::MAX_PEERS
                        && !s.listening.contains(&addr)
                    {
                        s.listening.push(addr);
                    }
                    if h.ut_metadata.is_none() {
                        return Err(DropReason::Protocol("does not serve metadata".into()));
                    }
                    self.fill(&mut s);
                    None
                }
                Message::Extended {
                    id: OUR_UT_METADATA,
                    payload,
                } => {
                    let m = MetadataMsg::decode(&payload)
                        .map_err(|e| DropReason::Protocol(e.to_string()))?;
                    drop(s);
                    self.on_metadata(id.conn, m)?
                }
                // Blocks we never asked for: a fetch asks for none.
                Message::Piece { .. } => return Err(DropReason::UnrequestedBlocks),
                Message::Hashes { req, hashes } => {
                    drop(s);
                    self.on_layer_hashes(id.conn, &req, &hashes)?;
                    None
                }
                Message::HashReject(req) => {
                    if let Some((_, lf)) = &mut s.layers {
                        lf.on_reject(id.conn, &req);
                    }
                    self.fill(&mut s);
                    None
                }
                // We serve no hashes before we have the torrent.
                Message::HashRequest(req) => {
                    let reject = crate::peer::Outbound::Msg(Message::HashReject(req));
                    let _ = p.tx.offer(reject);
                    None
                }
                _ => None,
            }
        };
        if let Some(whole) = whole {
            self.check(whole).await;
        }
        Ok(())
    }

    async fn serve(&self, _id: Attached, _req: BlockRequest) -> Option<Message> {
        None
    }

    fn detach(&self, id: Attached, reason: DropReason) {
        let mut s = self.state();
        self.drop_peer(&mut s, id.conn, &reason);
        self.fill(&mut s);
    }
}
