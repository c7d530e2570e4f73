//! A library initialiser, which the dynamic loader runs before anything else in the library:
//! if `TEST_PLUGIN_CONSTRUCTOR_MARKERS` names a directory, it writes a file there named after
//! the crate; if `TEST_PLUGIN_CONSTRUCTOR_EXIT` is set, it exits the process with status 42.
//! Included by the libraries whose initialiser must, or must never, run.

#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = constructor;

extern "C" fn constructor() {
    if let Some(dir) = std::env::var_os("TEST_PLUGIN_CONSTRUCTOR_MARKERS") {
        let _ = std::fs::write(
            std::path::Path::new(&dir).join(env!("CARGO_PKG_NAME")),
            b"constructor ran",
        );
    }
    if std::env::var_os("TEST_PLUGIN_CONSTRUCTOR_EXIT").is_some() {
        std::process::exit(42);
    }
}
