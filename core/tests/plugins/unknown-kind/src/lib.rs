//! A descriptor of a kind this rivulet does not know.

use rivulet_core::plugin::abi::descriptor::PluginDescriptor;

#[unsafe(export_name = "rivulet_plugin_descriptor")]
pub static DESCRIPTOR: PluginDescriptor =
    PluginDescriptor::new(42, 0, "forged", "0.0.0", &[], std::ptr::null());
