//! Why a plugin library was refused, and the errors a plugin lookup or call returns.

use std::path::PathBuf;

use crate::plugin::abi::descriptor::{ABI_VERSION, DESCRIPTOR_SYMBOL};
use crate::plugin::abi::fault::Fault;
use crate::plugin::info::PluginKind;

/// Why a library was refused. Every reason is decided before the library is loaded, except
/// `Dlopen` and the re-check of the loaded descriptor.
#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    #[error("cannot read: {0}")]
    Unreadable(std::io::Error),
    /// Anyone but its owner (root or us) could have changed what would run.
    #[error("{0}: refusing to load code others can change")]
    Untrusted(String),
    #[error("not an ELF shared object")]
    NotElf,
    #[error("malformed ELF file: {0}")]
    BadElf(String),
    #[error(
        "no `{DESCRIPTOR_SYMBOL}` symbol: not a rivulet plugin, or one built for an ABI before version 2"
    )]
    NoDescriptor,
    #[error("plugin ABI version {found}, this rivulet expects ABI version {expected}")]
    AbiVersion { found: u32, expected: u32 },
    #[error(
        "plugin's {kind} ABI fingerprint is {found:016x}, this rivulet's is {expected:016x}: \
         the plugin was built against another ABI {ABI_VERSION} layout; rebuild it"
    )]
    Fingerprint {
        kind: PluginKind,
        found: u64,
        expected: u64,
    },
    #[error("unknown plugin kind {0}")]
    UnknownKind(u32),
    #[error("cannot be loaded: {0}")]
    Dlopen(String),
    #[error("malformed descriptor: {0}")]
    Malformed(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// A library was refused; nothing in it ran beyond its initialisers, and for the reasons
    /// found in the file, not even those.
    #[error("{}: {reason}", path.display())]
    Load { path: PathBuf, reason: LoadFailure },
    /// A plugin's own code failed or panicked.
    #[error("{kind} plugin '{name}': {fault}")]
    Call {
        kind: PluginKind,
        name: String,
        fault: Fault,
    },
    #[error("no {kind} plugin named '{name}' (available: {available})")]
    NotFound {
        kind: PluginKind,
        name: String,
        available: String,
    },
}
