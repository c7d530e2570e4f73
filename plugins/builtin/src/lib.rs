//! The built-in plugins, linked in and registered under their names, plus whatever the
//! configured plugin directories hold: what a session is built from. Core cannot name the
//! plugin crates (they depend on it), so this crate is where they meet; the `rivulet` binary
//! and the tests build their sessions here.

use std::path::PathBuf;

use rivulet_core::config::Settings;
use rivulet_core::plugin::PiecePicker;
use rivulet_core::plugin::registry::{BuiltinPicker, BuiltinStorage, BuiltinTracker, Registry};
use rivulet_core::session::SessionOptions;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Takes over from a picker that breaks; linked in, so it is never a plugin's override.
pub const FALLBACK_PICKER: &str = "rarest-first";

/// Every built-in plugin, then whatever `plugin_dirs` hold (which may override built-ins).
pub fn registry(plugin_dirs: &[PathBuf]) -> Registry {
    let mut r = Registry::new();
    r.add_picker(
        BuiltinPicker::<rivulet_picker_rarest_first::RarestFirst>::new("rarest-first", VERSION),
    );
    r.add_picker(BuiltinPicker::<rivulet_picker_sequential::Sequential>::new(
        "sequential",
        VERSION,
    ));
    r.add_picker(BuiltinPicker::<rivulet_picker_streaming::Streaming>::new(
        "streaming",
        VERSION,
    ));
    r.add_storage(BuiltinStorage::<rivulet_storage_mmap::MmapStorage>::new(
        "mmap", VERSION,
    ));
    r.add_storage(BuiltinStorage::<rivulet_storage_memory::MemoryStorage>::new("memory", VERSION));
    r.add_tracker(BuiltinTracker::<rivulet_tracker_http::HttpTracker>::new(
        "http",
        VERSION,
        &["http", "https"],
    ));
    r.add_tracker(BuiltinTracker::<rivulet_tracker_udp::UdpTracker>::new(
        "udp",
        VERSION,
        &["udp"],
    ));
    r.load_dirs(plugin_dirs);
    r
}

fn fallback() -> Box<dyn PiecePicker> {
    Box::new(rivulet_picker_rarest_first::RarestFirst::default())
}

/// What a session needs: `settings`, the registry for its plugin directories, the fallback
/// picker, and where to write events (if anywhere).
pub fn session_options(settings: Settings, events_file: Option<PathBuf>) -> SessionOptions {
    SessionOptions {
        registry: registry(&settings.plugin_dirs),
        settings,
        fallback_picker: (FALLBACK_PICKER.to_string(), fallback),
        events_file,
    }
}
