//! Where peer addresses come from, each feeding the torrent's swarm through
//! `Torrent::add_peers` with its [`crate::torrent::PeerSource`]: trackers and the DHT here;
//! peer exchange (BEP 11) comes in on peer connections (`torrent/state/pex.rs`) and reaches the
//! same seam through an effect.

pub(crate) mod dht;
pub(crate) mod dht_node;
pub(crate) mod tracker;
