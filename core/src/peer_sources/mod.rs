//! Where peer addresses come from, each feeding the torrent's swarm through
//! `Torrent::add_peers` with its [`crate::torrent::PeerSource`]: trackers and the DHT now; peer
//! exchange and magnet `x.pe` peers are more sources of the same kind.

pub(crate) mod dht;
pub(crate) mod dht_node;
pub(crate) mod tracker;
