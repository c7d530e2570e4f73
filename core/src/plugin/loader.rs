//! Opens a plugin shared library and checks it, in order, before anything in it is called
//! beyond the entry point: an ELF file, loadable, exporting the entry symbol, returning a
//! descriptor, of this ABI version, of this build stamp, of a known kind, with a complete table.
//! What passes becomes a factory the [`super::registry::Registry`] holds.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::abi::picker::{DynPicker, PickerFns, PickerVTable};
use super::abi::storage::{DynStorage, StorageFns, StorageVTable};
use super::abi::tracker::{DynTracker, TrackerFns, TrackerVTable};
use super::abi::{self, EntryFn, PluginDescriptor, RawSlice};
use super::registry::{
    PickerFactory, PluginError, PluginInfo, PluginKind, PluginSource, StorageFactory,
    TrackerFactory,
};
use super::{PiecePicker, Storage, StorageError, StorageSpec, Tracker, TrackerError};

/// Why a library was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    #[error("cannot read: {0}")]
    Unreadable(std::io::Error),
    #[error("not an ELF shared object")]
    NotElf,
    #[error("cannot be loaded: {0}")]
    Dlopen(String),
    #[error("no `{}` symbol: not a rivulet plugin", abi::ENTRY_SYMBOL)]
    NoEntry,
    #[error("`{}` returned a null descriptor", abi::ENTRY_SYMBOL)]
    NullDescriptor,
    #[error("plugin ABI version {found}, this rivulet expects ABI version {expected}")]
    AbiVersion { found: u32, expected: u32 },
    #[error("plugin built against '{found}', this rivulet is '{expected}': rebuild the plugin")]
    BuildStamp {
        found: String,
        expected: &'static str,
    },
    #[error("unknown plugin kind {0}")]
    UnknownKind(u32),
    #[error("malformed descriptor: {0}")]
    Malformed(&'static str),
}

/// A library that passed every check, as the factory for its kind.
pub enum Loaded {
    Picker(DynPickerFactory),
    Storage(DynStorageFactory),
    Tracker(DynTrackerFactory),
}

/// Loads and checks the plugin at `path`. Never calls into the library beyond its initialisers
/// and the entry point.
pub fn load(path: &Path) -> Result<Loaded, PluginError> {
    let refuse = |reason| PluginError::Load {
        path: path.to_path_buf(),
        reason,
    };
    check_elf(path).map_err(refuse)?;
    // dlopen searches the library path for a name without a slash; make it a path.
    let absolute = std::path::absolute(path).map_err(|e| refuse(LoadFailure::Unreadable(e)))?;
    // RTLD_NOW: an unresolved symbol refuses the library now rather than aborting on first call.
    // SAFETY: loading runs the library's initialisers; that is the trust a user extends by
    // putting a library in a plugin directory.
    let library = unsafe {
        libloading::os::unix::Library::open(
            Some(&absolute),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
        )
    }
    .map_err(|e| refuse(LoadFailure::Dlopen(e.to_string())))?;
    let library = Arc::new(libloading::Library::from(library));
    // SAFETY: the symbol's type is fixed by the ABI; a library exporting the name with another
    // type is outside what can be checked.
    let entry: EntryFn = *unsafe { library.get::<EntryFn>(abi::ENTRY_SYMBOL) }
        .map_err(|_| refuse(LoadFailure::NoEntry))?;
    // SAFETY: as above.
    let descriptor = unsafe { entry() };
    if descriptor.is_null() {
        return Err(refuse(LoadFailure::NullDescriptor));
    }
    // Only the first field is common to every ABI version; read it alone before trusting more.
    // SAFETY: a non-null descriptor points at least at its version.
    let found = unsafe { descriptor.cast::<u32>().read() };
    if found != abi::ABI_VERSION {
        return Err(refuse(LoadFailure::AbiVersion {
            found,
            expected: abi::ABI_VERSION,
        }));
    }
    // SAFETY: the version matches, so the layout is this ABI's, in the library's static memory.
    let descriptor: &PluginDescriptor = unsafe { &*descriptor };
    let text = |raw: RawSlice, what| {
        // SAFETY: descriptor strings point at the library's static data.
        unsafe { raw.as_str() }
            .map(str::to_string)
            .map_err(|_| refuse(LoadFailure::Malformed(what)))
    };
    let stamp = text(descriptor.build_stamp, "build stamp is not UTF-8")?;
    if stamp != abi::BUILD_STAMP {
        return Err(refuse(LoadFailure::BuildStamp {
            found: stamp,
            expected: abi::BUILD_STAMP,
        }));
    }
    let kind = match descriptor.kind {
        abi::KIND_PICKER => PluginKind::Picker,
        abi::KIND_STORAGE => PluginKind::Storage,
        abi::KIND_TRACKER => PluginKind::Tracker,
        other => return Err(refuse(LoadFailure::UnknownKind(other))),
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
    let name: Arc<str> = name.into();
    let incomplete = || refuse(LoadFailure::Malformed("function table has a null entry"));
    // SAFETY (the three reads below): the kind says which table `vtable` points at.
    Ok(match kind {
        PluginKind::Picker => {
            let table = unsafe { &*descriptor.vtable.cast::<PickerVTable>() };
            Loaded::Picker(DynPickerFactory {
                fns: table.check().ok_or_else(incomplete)?,
                info,
                name,
                library,
            })
        }
        PluginKind::Storage => {
            let table = unsafe { &*descriptor.vtable.cast::<StorageVTable>() };
            Loaded::Storage(DynStorageFactory {
                fns: table.check().ok_or_else(incomplete)?,
                info,
                name,
                library,
            })
        }
        PluginKind::Tracker => {
            let table = unsafe { &*descriptor.vtable.cast::<TrackerVTable>() };
            let fns = table.check().ok_or_else(incomplete)?;
            // SAFETY: the scheme list is the library's static data.
            info.schemes = unsafe { table.schemes() }
                .map_err(|_| refuse(LoadFailure::Malformed("URL scheme is not UTF-8")))?;
            Loaded::Tracker(DynTrackerFactory {
                fns,
                info,
                name,
                library,
            })
        }
    })
}

fn check_elf(path: &Path) -> Result<(), LoadFailure> {
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(LoadFailure::Unreadable)?;
    match file.read_exact(&mut magic) {
        Ok(()) if magic == *b"\x7fELF" => Ok(()),
        Ok(()) => Err(LoadFailure::NotElf),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(LoadFailure::NotElf),
        Err(e) => Err(LoadFailure::Unreadable(e)),
    }
}

/// Creates [`DynPicker`]s from a loaded library.
pub struct DynPickerFactory {
    info: PluginInfo,
    name: Arc<str>,
    fns: PickerFns,
    library: Arc<libloading::Library>,
}

impl DynPickerFactory {
    /// A picker with its concrete type, for callers that want [`DynPicker::try_pick`] or
    /// [`DynPicker::poisoned`].
    pub fn create_dyn(&self) -> Result<DynPicker, PluginError> {
        DynPicker::create(self.fns, self.name.clone(), Some(self.library.clone())).map_err(
            |fault| PluginError::Call {
                kind: PluginKind::Picker,
                name: self.info.name.clone(),
                fault,
            },
        )
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

/// Opens [`DynStorage`]s from a loaded library.
pub struct DynStorageFactory {
    info: PluginInfo,
    name: Arc<str>,
    fns: StorageFns,
    library: Arc<libloading::Library>,
}

impl StorageFactory for DynStorageFactory {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn open(&self, spec: &StorageSpec) -> Result<Arc<dyn Storage>, StorageError> {
        let storage = DynStorage::open(
            self.fns,
            self.name.clone(),
            Some(self.library.clone()),
            spec,
        )?;
        Ok(Arc::new(storage))
    }
}

/// Opens [`DynTracker`]s from a loaded library.
pub struct DynTrackerFactory {
    info: PluginInfo,
    name: Arc<str>,
    fns: TrackerFns,
    library: Arc<libloading::Library>,
}

impl TrackerFactory for DynTrackerFactory {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn create(&self, url: &str) -> Result<Arc<dyn Tracker>, TrackerError> {
        let tracker =
            DynTracker::open(self.fns, self.name.clone(), Some(self.library.clone()), url)?;
        Ok(Arc::new(tracker))
    }
}
