//! Mounts torrents as a read-only directory through FUSE: each at the root as a download of it
//! into one folder would place it, added and removed while mounted through [`Torrents`].
//!
//! A torrent's tree appears the moment it is added (it comes from the metainfo alone); file reads
//! wait for the engine, each in its own task, with readahead kept per open file handle. Progress
//! is visible inside the mount as the `user.rivulet.progress` attribute of every file and folder
//! and as `.rivulet/status.json` at the mount root (every torrent).
//!
//! [`http`] is the other front end on the same readers: the HTTP API, streaming and web page of
//! `rivulet serve`.

mod detach_watch;
mod fs;
pub mod http;
mod mount;
mod mount_point;
mod source;

pub use fs::library::{Pending, Torrents};
pub use fs::status::PROGRESS_XATTR;
pub use mount::{Mount, MountError, MountOptions, mount, mount_torrents};
pub use mount_point::check as check_mount_point;
pub use source::Source;

/// Where the status document sits, relative to the mount point.
pub const STATUS_PATH: &str = ".rivulet/status.json";
