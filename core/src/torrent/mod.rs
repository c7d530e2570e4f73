//! One torrent's engine: peers, piece states, verification, storage, readers and trackers.
//!
//! [`TorrentHandle`] is the whole public surface: `download`, `seed` and the FUSE mount drive a
//! torrent only through it.

mod announce;
mod assembly;
pub(crate) mod engine;
mod handle;
pub(crate) mod peers;
mod rate;
mod readers;
mod recheck;
mod resume;
mod state;

pub use handle::{EngineError, Plugins, ReadError, Stats, TorrentConfig, TorrentHandle};
pub use recheck::{DataError, check_files_present};

/// Where the resume file of `meta` lives under `state_dir`.
pub fn resume_path(
    state_dir: &std::path::Path,
    meta: &crate::metainfo::Metainfo,
) -> std::path::PathBuf {
    resume::path_for(state_dir, meta)
}
