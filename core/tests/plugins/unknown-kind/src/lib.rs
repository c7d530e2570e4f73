//! A descriptor of a kind this rivulet does not know.

use rivulet_core::plugin::abi::{KIND_PICKER, PluginDescriptor};

static DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    kind: 42,
    ..PluginDescriptor::new(KIND_PICKER, "forged", "0.0.0", std::ptr::null())
};

#[unsafe(no_mangle)]
pub extern "C" fn rivulet_plugin_entry() -> *const PluginDescriptor {
    &DESCRIPTOR
}
