//! Rivulet's engine: metainfo, the peer wire protocol, per-torrent state and the plugin traits.
//!
//! Nothing here knows about FUSE; the mount and the CLI drive a torrent through
//! [`torrent::TorrentHandle`].

pub mod bitfield;
pub mod config;
pub mod data_lock;
pub mod events;
pub mod layout;
pub mod metainfo;
mod peer;
pub mod plugin;
pub mod torrent;
pub mod wire;
