//! An entry point that returns no descriptor.

#[unsafe(no_mangle)]
pub extern "C" fn rivulet_plugin_entry() -> *const u8 {
    std::ptr::null()
}
