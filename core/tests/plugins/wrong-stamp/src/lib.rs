//! A library built against another rivulet-core with the same ABI number.

use rivulet_core::plugin::abi::{KIND_PICKER, PluginDescriptor, RawSlice};

static DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    build_stamp: RawSlice::from_static("rivulet-core 0.0 abi 1"),
    ..PluginDescriptor::new(KIND_PICKER, "forged", "0.0.0", std::ptr::null())
};

#[unsafe(no_mangle)]
pub extern "C" fn rivulet_plugin_entry() -> *const PluginDescriptor {
    &DESCRIPTOR
}
