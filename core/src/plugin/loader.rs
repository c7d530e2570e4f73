//! Opens a plugin shared library after checking it, in order: a file only root or we can
//! change, in such a directory ([`crate::plugin::trust`]); an ELF file exporting a descriptor
//! of this ABI version, a known kind and that kind's fingerprint, read from the file
//! ([`crate::plugin::inspect`]). Only then is it loaded (its initialisers run), the loaded
//! descriptor checked again and its table checked complete. What passes becomes a factory the
//! [`crate::plugin::registry::Registry`] holds.

use std::path::Path;
use std::sync::Arc;

use crate::plugin::abi::descriptor::{DESCRIPTOR_SYMBOL, PluginDescriptor};
use crate::plugin::abi::picker::{DynPicker, PickerFns, PickerVTable};
use crate::plugin::abi::raw::RawSlice;
use crate::plugin::abi::storage::{DynStorage, StorageFns, StorageVTable};
use crate::plugin::abi::tracker::{DynTracker, TrackerFns, TrackerVTable};
use crate::plugin::error::{LoadFailure, PluginError};
use crate::plugin::factory::{PickerFactory, StorageFactory, TrackerFactory};
use crate::plugin::info::{PluginInfo, PluginKind, PluginSource};
use crate::plugin::inspect;
use crate::plugin::picker::PiecePicker;
use crate::plugin::storage::{Storage, StorageError, StorageSpec};
use crate::plugin::tracker::{Tracker, TrackerError};

/// A library that passed every check, as the factory for its kind.
pub enum Loaded {
    Picker(DynPickerFactory),
    Storage(DynStorageFactory),
    Tracker(DynTrackerFactory),
}

/// Checks and loads the plugin at `path`. Nothing in the library runs unless the file passes
/// every check; then only its initialisers run before its descriptor is checked again.
pub fn load(path: &Path) -> Result<Loaded, PluginError> {
    let refuse = |reason| PluginError::Load {
        path: path.to_path_buf(),
        reason,
    };
    inspect::check_file(path).map_err(refuse)?;
    // dlopen searches the library path for a name without a slash; make it a path.
    let absolute = std::path::absolute(path).map_err(|e| refuse(LoadFailure::Unreadable(e)))?;
    // Said before the initialisers run, so that one that crashes or exits is named.
    tracing::debug!("loading plugin {}", absolute.display());
    // RTLD_NOW: an unresolved symbol refuses the library now rather than aborting on first call.
    // SAFETY: loading runs the library's initialisers; that is the trust a user extends by
    // putting a library in a plugin directory that only they (or root) can write.
    let library = unsafe {
        libloading::os::unix::Library::open(
            Some(&absolute),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
        )
    }
    .map_err(|e| refuse(LoadFailure::Dlopen(e.to_string())))?;
    let library = Arc::new(libloading::Library::from(library));
    // SAFETY: the symbol is a static `PluginDescriptor`; `*symbol` is its address.
    let descriptor: *const PluginDescriptor =
        *unsafe { library.get::<*const PluginDescriptor>(DESCRIPTOR_SYMBOL) }
            .map_err(|_| refuse(LoadFailure::NoDescriptor))?;
    // SAFETY: the file's stamp matched, so the static has this ABI's layout and lives as long
    // as the library.
    let descriptor: &PluginDescriptor = unsafe { &*descriptor };
    let kind = inspect::check_stamp(
        descriptor.abi_version,
        descriptor.kind,
        descriptor.fingerprint,
    )
    .map_err(refuse)?;
    let text = |raw: RawSlice, what| {
        // SAFETY: descriptor strings point at the library's static data.
        unsafe { raw.as_str() }
            .map(str::to_string)
            .map_err(|_| refuse(LoadFailure::Malformed(what)))
    };
    let name = text(descriptor.name, "name is not UTF-8")?;
    if name.is_empty() {
        return Err(refuse(LoadFailure::Malformed("empty name")));
    }
    let version = text(descriptor.version, "version is not UTF-8")?;
    if descriptor.vtable.is_null() {
        return Err(refuse(LoadFailure::Malformed("null function table")));
    }
    let mut info = PluginInfo::new(
        kind,
        &name,
        &version,
        PluginSource::Path(path.to_path_buf()),
    );
    let incomplete = || refuse(LoadFailure::Malformed("function table has a null entry"));
    // SAFETY (the three reads below): the checked kind says which table `vtable` points at.
    Ok(match kind {
        PluginKind::Picker => {
            let table = unsafe { *descriptor.vtable.cast::<PickerVTable>() };
            let fns = table.check().ok_or_else(incomplete)?;
            Loaded::Picker(DynFactory { info, fns, library })
        }
        PluginKind::Storage => {
            let table = unsafe { *descriptor.vtable.cast::<StorageVTable>() };
            let fns = table.check().ok_or_else(incomplete)?;
            Loaded::Storage(DynFactory { info, fns, library })
        }
        PluginKind::Tracker => {
            let table = unsafe { *descriptor.vtable.cast::<TrackerVTable>() };
            let fns = table.check().ok_or_else(incomplete)?;
            // SAFETY: the scheme list is the library's static data.
            let schemes: &[RawSlice] = if descriptor.schemes.is_null() {
                &[]
            } else {
                unsafe { std::slice::from_raw_parts(descriptor.schemes, descriptor.schemes_len) }
            };
            for scheme in schemes {
                let scheme = text(*scheme, "URL scheme is not UTF-8")?;
                info.schemes.push(scheme.to_ascii_lowercase());
            }
            Loaded::Tracker(DynFactory { info, fns, library })
        }
    })
}

/// Makes instances from a loaded library's table.
pub struct DynFactory<F> {
    info: PluginInfo,
    fns: F,
    library: Arc<libloading::Library>,
}

pub type DynPickerFactory = DynFactory<PickerFns>;
pub type DynStorageFactory = DynFactory<StorageFns>;
pub type DynTrackerFactory = DynFactory<TrackerFns>;

impl<F> DynFactory<F> {
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }
}

impl DynPickerFactory {
    /// A picker with its concrete type, for callers that want [`DynPicker::poisoned`].
    pub fn create_dyn(&self) -> Result<DynPicker, PluginError> {
        DynPicker::open(self.fns, &self.info.name, Some(self.library.clone())).map_err(|fault| {
            PluginError::Call {
                kind: PluginKind::Picker,
                name: self.info.name.clone(),
                fault,
            }
        })
    }
}

impl PickerFactory for DynPickerFactory {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn create(&self) -> Result<Box<dyn PiecePicker>, PluginError> {
        Ok(Box::new(self.create_dyn()?))
    }
}

impl StorageFactory for DynStorageFactory {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn open(&self, spec: &StorageSpec) -> Result<Arc<dyn Storage>, StorageError> {
        let storage =
            DynStorage::open(self.fns, &self.info.name, Some(self.library.clone()), spec)?;
        Ok(Arc::new(storage))
    }
}

impl TrackerFactory for DynTrackerFactory {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn create(&self, url: &str) -> Result<Arc<dyn Tracker>, TrackerError> {
        let tracker = DynTracker::open(self.fns, &self.info.name, Some(self.library.clone()), url)?;
        Ok(Arc::new(tracker))
    }
}
