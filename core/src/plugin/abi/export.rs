//! The macros a plugin crate calls to become a loadable plugin.
//!
//! Every plugin crate in `plugins/` is linked into the `rivulet` binary as an rlib *and* built as
//! a cdylib. Several of them in one binary must not each define the exported descriptor symbol,
//! so the macros emit it only under `#[cfg(feature = "dynamic")]`, evaluated in the plugin crate
//! where the macro expands. A plugin crate therefore declares
//!
//! ```toml
//! [lib]
//! crate-type = ["rlib", "cdylib"]
//!
//! [features]
//! # Emits the `rivulet_plugin_descriptor` symbol: on only when building the loadable library.
//! dynamic = []
//! ```
//!
//! and its loadable twin is built with
//! `cargo build -p rivulet-picker-x --features dynamic --target-dir target/dynamic` (a separate
//! target directory, so the feature switch does not rebuild or overwrite the shared one). A crate
//! that is only ever loaded dynamically (like `examples/picker-reverse`) turns `dynamic` on by
//! default. Without the feature the macro still checks at compile time that the type fits.
//!
//! The plugin must be built with unwinding panics (the default): a panic is caught at the
//! boundary and reported; with `panic = "abort"` it would take the whole process down.

/// The one shape behind the three export macros: the kind's table for `$ty` and the descriptor
/// pointing at it, exported under [`DESCRIPTOR_SYMBOL`](crate::plugin::abi::descriptor::DESCRIPTOR_SYMBOL).
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin {
    ($table:ty, $ty:ty, $name:expr, $version:expr, [$($scheme:expr),*]) => {
        const _: $table = <$table>::of::<$ty>();

        #[cfg(feature = "dynamic")]
        const _: () = {
            static VTABLE: $table = <$table>::of::<$ty>();
            const SCHEMES: &[$crate::plugin::abi::raw::RawSlice] =
                &[$($crate::plugin::abi::raw::RawSlice::from_static($scheme)),*];
            #[unsafe(export_name = "rivulet_plugin_descriptor")]
            pub static DESCRIPTOR: $crate::plugin::abi::descriptor::PluginDescriptor =
                $crate::plugin::abi::descriptor::PluginDescriptor::new(
                    <$table>::KIND,
                    <$table>::FINGERPRINT,
                    $name,
                    $version,
                    SCHEMES,
                    &VTABLE as *const $table as *const ::std::ffi::c_void,
                );
        };
    };
}

/// Makes `$ty` (a `PiecePicker + Default`) a loadable picker plugin named `$name`.
///
/// ```ignore
/// rivulet_core::export_picker!(ReversePicker, "reverse", env!("CARGO_PKG_VERSION"));
/// ```
#[macro_export]
macro_rules! export_picker {
    ($ty:ty, $name:expr, $version:expr $(,)?) => {
        $crate::__export_plugin!(
            $crate::plugin::abi::picker::PickerVTable,
            $ty,
            $name,
            $version,
            []
        );
    };
}

/// Makes `$ty` (a `Storage` implementing [`StorageOpen`](crate::plugin::StorageOpen)) a loadable
/// storage plugin named `$name`.
///
/// ```ignore
/// rivulet_core::export_storage!(MmapStorage, "mmap", env!("CARGO_PKG_VERSION"));
/// ```
#[macro_export]
macro_rules! export_storage {
    ($ty:ty, $name:expr, $version:expr $(,)?) => {
        $crate::__export_plugin!(
            $crate::plugin::abi::storage::StorageVTable,
            $ty,
            $name,
            $version,
            []
        );
    };
}

/// Makes `$ty` (a `Tracker` implementing [`TrackerOpen`](crate::plugin::TrackerOpen)) a loadable
/// tracker plugin named `$name`, chosen for announce URLs with one of the given schemes.
///
/// ```ignore
/// rivulet_core::export_tracker!(HttpTracker, "http", env!("CARGO_PKG_VERSION"),
///                               schemes = ["http", "https"]);
/// ```
#[macro_export]
macro_rules! export_tracker {
    ($ty:ty, $name:expr, $version:expr, schemes = [$($scheme:expr),+ $(,)?] $(,)?) => {
        $crate::__export_plugin!(
            $crate::plugin::abi::tracker::TrackerVTable, $ty, $name, $version, [$($scheme),+]
        );
    };
}
