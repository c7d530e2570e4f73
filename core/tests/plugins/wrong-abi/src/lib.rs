//! A library from a future ABI: the host must read its version and stop there.

use rivulet_core::plugin::abi::{KIND_PICKER, PluginDescriptor};

static DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    abi_version: 999,
    ..PluginDescriptor::new(KIND_PICKER, "forged", "0.0.0", std::ptr::null())
};

#[unsafe(no_mangle)]
pub extern "C" fn rivulet_plugin_entry() -> *const PluginDescriptor {
    &DESCRIPTOR
}
