//! What the registry holds per plugin: a factory that makes fresh instances, one per torrent,
//! whether the code is linked in or loaded from a library.

use std::sync::Arc;

use crate::plugin::error::PluginError;
use crate::plugin::info::PluginInfo;
use crate::plugin::picker::PiecePicker;
use crate::plugin::storage::{Storage, StorageError, StorageSpec};
use crate::plugin::tracker::{Tracker, TrackerError};

pub trait PickerFactory: Send + Sync {
    fn info(&self) -> &PluginInfo;
    /// A fresh picker, one per torrent.
    fn create(&self) -> Result<Box<dyn PiecePicker>, PluginError>;
}

pub trait StorageFactory: Send + Sync {
    fn info(&self) -> &PluginInfo;
    fn open(&self, spec: &StorageSpec) -> Result<Arc<dyn Storage>, StorageError>;
}

pub trait TrackerFactory: Send + Sync {
    fn info(&self) -> &PluginInfo;
    fn schemes(&self) -> &[String] {
        &self.info().schemes
    }
    fn create(&self, url: &str) -> Result<Arc<dyn Tracker>, TrackerError>;
}
