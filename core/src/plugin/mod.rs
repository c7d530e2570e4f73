//! The three extension points of the engine and how implementations are found.
//!
//! The engine talks only to these traits. Implementations live in `plugins/`; each is linked in
//! as a built-in or loaded from a shared library through the C ABI in [`abi`].
//!
//! Modules here import one another one way only, and never through the re-exports below
//! (`core/tests/plugin_imports.rs` checks it): the traits ([`picker`], [`storage`], [`tracker`])
//! import nothing from here; [`abi`] builds on them; [`trust`] and [`inspect`] decide whether a
//! library may be loaded; [`loader`] loads it; [`registry`] sits on top.

pub mod abi;
pub mod error;
pub mod factory;
pub mod info;
pub mod inspect;
pub mod loader;
pub mod peer_pieces;
pub mod picker;
pub mod registry;
pub mod storage;
pub mod tracker;
pub mod trust;

pub use error::{LoadFailure, PluginError};
pub use factory::{PickerFactory, StorageFactory, TrackerFactory};
pub use info::{PluginInfo, PluginKind, PluginSource, PluginStatus};
pub use peer_pieces::PeerPieces;
pub use picker::{PeerKey, PiecePicker};
pub use registry::{BuiltinPicker, BuiltinStorage, BuiltinTracker, Registry};
pub use storage::{Storage, StorageError, StorageOpen, StorageSpec};
pub use tracker::{
    AnnounceEvent, AnnounceRequest, AnnounceResponse, Tracker, TrackerError, TrackerOpen,
};
