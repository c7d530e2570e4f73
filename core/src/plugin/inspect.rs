//! Reads a plugin library's stamp (ABI version, kind, fingerprint) from the file, without
//! loading it, so that an incompatible library's initialisers never run; and the one check of a
//! stamp, used on the file and again on the loaded descriptor.
//!
//! The exported descriptor is a static whose first fields hold no pointers, so their bytes in
//! the file are the bytes the loaded library would show. Files are read whole, up to
//! [`MAX_LIBRARY_BYTES`], rather than mapped: a mapped file truncated by someone else while we
//! read it would kill the process with SIGBUS.

use std::io::Read;
use std::mem::{offset_of, size_of};
use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol};

use crate::plugin::abi::descriptor::{
    ABI_VERSION, DESCRIPTOR_SYMBOL, KIND_PICKER, KIND_STORAGE, KIND_TRACKER, PluginDescriptor,
};
use crate::plugin::abi::picker::PickerVTable;
use crate::plugin::abi::storage::StorageVTable;
use crate::plugin::abi::tracker::TrackerVTable;
use crate::plugin::error::LoadFailure;
use crate::plugin::info::PluginKind;
use crate::plugin::trust;

/// Larger files are refused unread; the built-in plugins are a few MiB in a debug build.
pub const MAX_LIBRARY_BYTES: u64 = 256 << 20;

/// Opens `path`, refuses it if others could change it, and checks the stamp of the descriptor
/// it exports; returns its kind.
pub fn check_file(path: &Path) -> Result<PluginKind, LoadFailure> {
    let file = std::fs::File::open(path).map_err(LoadFailure::Unreadable)?;
    let meta = file.metadata().map_err(LoadFailure::Unreadable)?;
    trust::check_library(path, &meta)?;
    if meta.len() > MAX_LIBRARY_BYTES {
        return Err(LoadFailure::BadElf(format!(
            "{} bytes, more than a plugin may be ({MAX_LIBRARY_BYTES})",
            meta.len()
        )));
    }
    let mut data = Vec::new();
    file.take(MAX_LIBRARY_BYTES)
        .read_to_end(&mut data)
        .map_err(LoadFailure::Unreadable)?;
    if !data.starts_with(b"\x7fELF") {
        return Err(LoadFailure::NotElf);
    }
    let elf = object::File::parse(&*data).map_err(|e| LoadFailure::BadElf(e.to_string()))?;
    let symbol = elf
        .dynamic_symbols()
        .find(|s| s.name() == Ok(DESCRIPTOR_SYMBOL))
        .ok_or(LoadFailure::NoDescriptor)?;
    let stored = symbol
        .section_index()
        .and_then(|i| elf.section_by_index(i).ok())
        .and_then(|section| section.data_range(symbol.address(), symbol.size()).ok())
        .flatten()
        .ok_or(LoadFailure::Malformed(
            "descriptor is not stored in the file",
        ))?;
    let little = elf.is_little_endian();
    let field = |offset: usize, len: usize| -> Option<u64> {
        let bytes = stored.get(offset..offset + len)?;
        let mut word = [0u8; 8];
        if little {
            word[..len].copy_from_slice(bytes);
            Some(u64::from_le_bytes(word))
        } else {
            word[8 - len..].copy_from_slice(bytes);
            Some(u64::from_be_bytes(word))
        }
    };
    // Only the version is common to every ABI; read it alone before trusting the layout.
    let version = field(offset_of!(PluginDescriptor, abi_version), 4)
        .ok_or(LoadFailure::Malformed("descriptor too short for a version"))?;
    check_version(version as u32)?;
    if stored.len() != size_of::<PluginDescriptor>() {
        return Err(LoadFailure::Malformed("descriptor of the wrong size"));
    }
    let kind = field(offset_of!(PluginDescriptor, kind), 4).unwrap_or_default();
    let fingerprint = field(offset_of!(PluginDescriptor, fingerprint), 8).unwrap_or_default();
    check_stamp(ABI_VERSION, kind as u32, fingerprint)
}

fn check_version(found: u32) -> Result<(), LoadFailure> {
    if found == ABI_VERSION {
        Ok(())
    } else {
        Err(LoadFailure::AbiVersion {
            found,
            expected: ABI_VERSION,
        })
    }
}

/// Whether a descriptor with this stamp may be used; its kind if so.
pub fn check_stamp(
    abi_version: u32,
    kind: u32,
    fingerprint: u64,
) -> Result<PluginKind, LoadFailure> {
    check_version(abi_version)?;
    let (kind, expected) = match kind {
        KIND_PICKER => (PluginKind::Picker, PickerVTable::FINGERPRINT),
        KIND_STORAGE => (PluginKind::Storage, StorageVTable::FINGERPRINT),
        KIND_TRACKER => (PluginKind::Tracker, TrackerVTable::FINGERPRINT),
        other => return Err(LoadFailure::UnknownKind(other)),
    };
    if fingerprint != expected {
        return Err(LoadFailure::Fingerprint {
            kind,
            found: fingerprint,
            expected,
        });
    }
    Ok(kind)
}
