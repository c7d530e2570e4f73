//! The three extension points of the engine and how implementations are found.
//!
//! The engine talks only to these traits. Implementations live in `plugins/`; each is linked in
//! as a built-in or loaded from a shared library through the C ABI in [`abi`].

pub mod picker;
pub mod storage;
pub mod tracker;

pub use picker::{PeerKey, PiecePicker};
pub use storage::{Storage, StorageError, StorageSpec};
pub use tracker::{AnnounceEvent, AnnounceRequest, AnnounceResponse, Tracker, TrackerError};

pub mod abi;
pub mod loader;
pub mod registry;

pub use registry::{
    BuiltinPicker, BuiltinStorage, BuiltinTracker, PickerFactory, PluginError, PluginInfo,
    PluginKind, PluginSource, PluginStatus, Registry, StorageFactory, StorageOpen, TrackerFactory,
    TrackerOpen,
};
