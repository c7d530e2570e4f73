//! A library of this ABI version whose picker table has another layout (its fingerprint
//! differs), as one built against a rivulet whose picker methods changed would be.

use rivulet_core::plugin::abi::descriptor::{KIND_PICKER, PluginDescriptor};
use rivulet_core::plugin::abi::picker::PickerVTable;

#[unsafe(export_name = "rivulet_plugin_descriptor")]
pub static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    KIND_PICKER,
    PickerVTable::FINGERPRINT ^ 1,
    "forged",
    "0.0.0",
    &[],
    std::ptr::null(),
);
