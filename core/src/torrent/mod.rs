//! One torrent as owned parts: the piece tracker, the swarm, the choker and the readers, under
//! one lock in [`state::TorrentState`]; the runner that carries out what they decide; and the
//! public [`TorrentHandle`]. STATE.md beside this file has the piece states and the locking.

mod assembly;
pub mod attributes;
mod choker;
mod effects;
mod env;
mod error;
mod file_stamp;
mod handle;

mod peers;
mod pieces;
mod rate;

mod readers;
mod recheck;
mod resume;
mod runner;
mod schedule;
mod state;
mod swarm;

pub(crate) use env::{Env, PeerBudget, PeerSlot};
pub use env::{Plugins, TorrentConfig};
pub use error::{EngineError, ReadError};
pub use handle::{PeerInfo, Stats, TorrentHandle};
pub(crate) use peers::MessageBudget;
pub(crate) use rate::RateLimiter;
pub use recheck::{DataError, check_files_present};
pub(crate) use runner::Torrent;
pub use state::Phase;
pub use swarm::PeerSource;
pub(crate) use swarm::Swarm;

/// Where the resume file of `meta` lives under `state_dir`.
pub fn resume_path(
    state_dir: &std::path::Path,
    meta: &crate::metainfo::Metainfo,
) -> std::path::PathBuf {
    resume::path_for(state_dir, meta)
}
