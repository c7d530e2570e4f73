//! What a plugin built for ABI version 1 exported: an entry function returning a descriptor, and
//! no descriptor static. It must be refused from the file, without being loaded.

#[unsafe(no_mangle)]
pub extern "C" fn rivulet_plugin_entry() -> *const u8 {
    std::ptr::null()
}
