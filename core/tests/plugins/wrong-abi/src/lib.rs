//! A library from a future ABI, with an initialiser ([`constructor`]): the host must read its
//! version from the file and stop there, so the initialiser never runs.

#[path = "../../constructor.rs"]
mod constructor;

use rivulet_core::plugin::abi::descriptor::{KIND_PICKER, PluginDescriptor};
use rivulet_core::plugin::abi::picker::PickerVTable;

#[unsafe(export_name = "rivulet_plugin_descriptor")]
pub static DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    abi_version: 999,
    ..PluginDescriptor::new(
        KIND_PICKER,
        PickerVTable::FINGERPRINT,
        "forged",
        "0.0.0",
        &[],
        std::ptr::null(),
    )
};
