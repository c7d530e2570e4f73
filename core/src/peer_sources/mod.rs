//! Where peer addresses come from, each feeding the torrent's swarm through
//! `Torrent::add_peers` with its [`crate::torrent::PeerSource`]: trackers now; the DHT, peer
//! exchange and magnet `x.pe` peers are more sources of the same kind.

pub(crate) mod tracker;
