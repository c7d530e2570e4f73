//! Which pickers, storage backends and tracker clients exist, built in or loaded from plugin
//! directories, and how the engine gets one by name (or, for trackers, by URL scheme).
//!
//! A plugin loaded from a directory wins over a built-in of the same kind and name, so users can
//! override built-ins; [`Registry::list`] shows both, the built-in marked overridden.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::plugin::error::PluginError;
use crate::plugin::factory::{PickerFactory, StorageFactory, TrackerFactory};
use crate::plugin::info::{PluginInfo, PluginKind, PluginSource};
// Re-exported for the binary, which builds a registry and prints its list.
pub use crate::plugin::info::PluginStatus;
use crate::plugin::loader::{self, Loaded};
use crate::plugin::picker::PiecePicker;
use crate::plugin::storage::{Storage, StorageError, StorageOpen, StorageSpec};
use crate::plugin::tracker::{Tracker, TrackerError, TrackerOpen};
use crate::plugin::trust;

/// A picker type linked into the binary.
pub struct BuiltinPicker<T> {
    info: PluginInfo,
    _type: PhantomData<fn() -> T>,
}

impl<T: PiecePicker + Default + 'static> BuiltinPicker<T> {
    pub fn new(name: &str, version: &str) -> Self {
        BuiltinPicker {
            info: PluginInfo::new(PluginKind::Picker, name, version, PluginSource::BuiltIn),
            _type: PhantomData,
        }
    }
}

impl<T: PiecePicker + Default + 'static> PickerFactory for BuiltinPicker<T> {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn create(&self) -> Result<Box<dyn PiecePicker>, PluginError> {
        Ok(Box::new(T::default()))
    }
}

/// A storage backend type linked into the binary.
pub struct BuiltinStorage<T> {
    info: PluginInfo,
    _type: PhantomData<fn() -> T>,
}

impl<T: StorageOpen> BuiltinStorage<T> {
    pub fn new(name: &str, version: &str) -> Self {
        BuiltinStorage {
            info: PluginInfo::new(PluginKind::Storage, name, version, PluginSource::BuiltIn),
            _type: PhantomData,
        }
    }
}

impl<T: StorageOpen> StorageFactory for BuiltinStorage<T> {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn open(&self, spec: &StorageSpec) -> Result<Arc<dyn Storage>, StorageError> {
        Ok(Arc::new(T::open(spec)?))
    }
}

/// A tracker client type linked into the binary.
pub struct BuiltinTracker<T> {
    info: PluginInfo,
    _type: PhantomData<fn() -> T>,
}

impl<T: TrackerOpen> BuiltinTracker<T> {
    pub fn new(name: &str, version: &str, schemes: &[&str]) -> Self {
        let mut info = PluginInfo::new(PluginKind::Tracker, name, version, PluginSource::BuiltIn);
        info.schemes = schemes.iter().map(|s| s.to_ascii_lowercase()).collect();
        BuiltinTracker {
            info,
            _type: PhantomData,
        }
    }
}

impl<T: TrackerOpen> TrackerFactory for BuiltinTracker<T> {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn create(&self, url: &str) -> Result<Arc<dyn Tracker>, TrackerError> {
        Ok(Arc::new(T::open(url)?))
    }
}

/// Every known plugin. Built once at start-up, then only read.
#[derive(Default)]
pub struct Registry {
    pickers: Vec<Arc<dyn PickerFactory>>,
    storages: Vec<Arc<dyn StorageFactory>>,
    trackers: Vec<Arc<dyn TrackerFactory>>,
    broken: Vec<PluginInfo>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_picker(&mut self, factory: impl PickerFactory + 'static) {
        self.pickers.push(Arc::new(factory));
    }

    pub fn add_storage(&mut self, factory: impl StorageFactory + 'static) {
        self.storages.push(Arc::new(factory));
    }

    pub fn add_tracker(&mut self, factory: impl TrackerFactory + 'static) {
        self.trackers.push(Arc::new(factory));
    }

    /// Loads every `*.so` in `dirs` (each directory's files in name order). A library that is
    /// refused, or a directory that cannot be read, is logged and recorded as broken in
    /// [`Registry::list`]; it does not stop the others.
    pub fn load_dirs(&mut self, dirs: &[PathBuf]) {
        for dir in dirs {
            let libraries = std::fs::read_dir(dir)
                .map_err(|e| format!("{}: cannot read plugin directory: {e}", dir.display()))
                .and_then(|entries| {
                    trust::check_dir(dir)
                        .map(|()| entries)
                        .map_err(|e| format!("{}: {e}", dir.display()))
                });
            let entries = match libraries {
                Ok(entries) => entries,
                Err(reason) => {
                    tracing::warn!("{reason}");
                    self.broken.push(PluginInfo::broken(dir, reason));
                    continue;
                }
            };
            let mut libraries: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "so") && !p.is_dir())
                .collect();
            libraries.sort();
            for path in libraries {
                // Failures are recorded by load_file.
                let _ = self.load_file(&path);
            }
        }
    }

    /// Loads one plugin library and registers it; a refused library is also recorded as broken.
    pub fn load_file(&mut self, path: &Path) -> Result<PluginKind, PluginError> {
        match loader::load(path) {
            Ok(Loaded::Picker(f)) => {
                tracing::info!(name = %f.info().name, path = %path.display(), "picker plugin loaded");
                self.pickers.push(Arc::new(f));
                Ok(PluginKind::Picker)
            }
            Ok(Loaded::Storage(f)) => {
                tracing::info!(name = %f.info().name, path = %path.display(), "storage plugin loaded");
                self.storages.push(Arc::new(f));
                Ok(PluginKind::Storage)
            }
            Ok(Loaded::Tracker(f)) => {
                tracing::info!(name = %f.info().name, path = %path.display(), "tracker plugin loaded");
                self.trackers.push(Arc::new(f));
                Ok(PluginKind::Tracker)
            }
            Err(e) => {
                tracing::warn!("plugin refused: {e}");
                self.broken.push(PluginInfo::broken(path, e.to_string()));
                Err(e)
            }
        }
    }

    /// The picker called `name`.
    pub fn picker(&self, name: &str) -> Result<Arc<dyn PickerFactory>, PluginError> {
        let infos: Vec<&PluginInfo> = self.pickers.iter().map(|f| f.info()).collect();
        winner(&infos, |i| i.name == name)
            .map(|i| self.pickers[i].clone())
            .ok_or_else(|| not_found(PluginKind::Picker, name, &infos))
    }

    /// The storage backend called `name`.
    pub fn storage(&self, name: &str) -> Result<Arc<dyn StorageFactory>, PluginError> {
        let infos: Vec<&PluginInfo> = self.storages.iter().map(|f| f.info()).collect();
        winner(&infos, |i| i.name == name)
            .map(|i| self.storages[i].clone())
            .ok_or_else(|| not_found(PluginKind::Storage, name, &infos))
    }

    /// A tracker client for `url`, from the plugin handling its scheme.
    pub fn tracker_for_url(&self, url: &str) -> Result<Arc<dyn Tracker>, TrackerError> {
        let scheme = url
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase())
            .ok_or_else(|| TrackerError::Unsupported(format!("{url}: no URL scheme")))?;
        let infos: Vec<&PluginInfo> = self.trackers.iter().map(|f| f.info()).collect();
        let index = winner(&infos, |i| i.schemes.contains(&scheme)).ok_or_else(|| {
            TrackerError::Unsupported(format!("{url}: no tracker plugin handles '{scheme}'"))
        })?;
        self.trackers[index].create(url)
    }

    /// Every plugin: built-ins, loaded ones and refused libraries, with their status.
    pub fn list(&self) -> Vec<PluginInfo> {
        let mut out = Vec::new();
        for infos in [
            self.pickers.iter().map(|f| f.info()).collect::<Vec<_>>(),
            self.storages.iter().map(|f| f.info()).collect(),
            self.trackers.iter().map(|f| f.info()).collect(),
        ] {
            for (i, info) in infos.iter().enumerate() {
                let mut info = (*info).clone();
                if let Some(w) = winner(&infos, |other| other.name == info.name)
                    && w != i
                {
                    info.status = PluginStatus::Overridden {
                        by: infos[w].source.clone(),
                    };
                }
                out.push(info);
            }
        }
        out.extend(self.broken.iter().cloned());
        out
    }
}

/// Index of the entry to use among those matching: the first loaded one, else the first
/// built-in.
fn winner(infos: &[&PluginInfo], matches: impl Fn(&PluginInfo) -> bool) -> Option<usize> {
    let mut candidates = infos.iter().enumerate().filter(|(_, i)| matches(i));
    let first = candidates.clone().next().map(|(i, _)| i);
    candidates
        .find(|(_, i)| matches!(i.source, PluginSource::Path(_)))
        .map(|(i, _)| i)
        .or(first)
}

fn not_found(kind: PluginKind, name: &str, infos: &[&PluginInfo]) -> PluginError {
    let mut names: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    PluginError::NotFound {
        kind,
        name: name.to_string(),
        available: if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        },
    }
}
