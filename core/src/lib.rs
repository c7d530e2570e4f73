//! Rivulet's engine: a session of torrents, the peer wire protocol, metainfo, the plugin
//! traits, and the one runtime seam.
//!
//! Nothing here knows about FUSE or HTTP; front ends drive torrents through a
//! [`session::Session`] and its [`torrent::TorrentHandle`]s. ARCHITECTURE.md at the top of the
//! repository has the map.

pub mod bitfield;
pub mod config;
pub mod data_lock;
pub mod events;
pub mod layout;
mod metadata;
pub mod metainfo;
mod peer;
mod peer_sources;
pub mod plugin;
pub mod reader;
pub mod rt;
pub mod session;
pub mod torrent;
pub mod wire;
