//! The macros a plugin crate calls to become a loadable plugin.
//!
//! Every plugin crate in `plugins/` is linked into the `rivulet` binary as an rlib *and* built as
//! a cdylib. Several of them in one binary must not each define the `#[no_mangle]` entry symbol,
//! so the macros emit it only under `#[cfg(feature = "dynamic")]`, evaluated in the plugin crate
//! where the macro expands. A plugin crate therefore declares
//!
//! ```toml
//! [lib]
//! crate-type = ["rlib", "cdylib"]
//!
//! [features]
//! # Emits the `rivulet_plugin_entry` symbol: on only when building the loadable library.
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

/// Makes `$ty` (a `PiecePicker + Default`) a loadable picker plugin named `$name`.
///
/// ```ignore
/// rivulet_core::export_picker!(ReversePicker, "reverse", env!("CARGO_PKG_VERSION"));
/// ```
///
/// The entry symbol is only emitted with the plugin crate's `dynamic` feature; see the
/// [module docs](crate::plugin::abi::export) for why and how to build.
#[macro_export]
macro_rules! export_picker {
    ($ty:ty, $name:expr, $version:expr $(,)?) => {
        const _: fn() = || {
            fn fits<T: $crate::plugin::PiecePicker + ::std::default::Default>() {}
            fits::<$ty>();
        };

        #[cfg(feature = "dynamic")]
        const _: () = {
            static VTABLE: $crate::plugin::abi::picker::PickerVTable =
                $crate::plugin::abi::picker::PickerVTable::of::<$ty>();
            static DESCRIPTOR: $crate::plugin::abi::PluginDescriptor =
                $crate::plugin::abi::PluginDescriptor::new(
                    $crate::plugin::abi::KIND_PICKER,
                    $name,
                    $version,
                    &VTABLE as *const $crate::plugin::abi::picker::PickerVTable
                        as *const ::std::ffi::c_void,
                );
            #[unsafe(no_mangle)]
            pub extern "C" fn rivulet_plugin_entry() -> *const $crate::plugin::abi::PluginDescriptor
            {
                &DESCRIPTOR
            }
        };
    };
}

/// Makes `$ty` (a `Storage` implementing [`StorageOpen`](crate::plugin::StorageOpen)) a loadable
/// storage plugin named `$name`.
///
/// ```ignore
/// rivulet_core::export_storage!(MmapStorage, "mmap", env!("CARGO_PKG_VERSION"));
/// ```
///
/// The entry symbol is only emitted with the plugin crate's `dynamic` feature; see the
/// [module docs](crate::plugin::abi::export).
#[macro_export]
macro_rules! export_storage {
    ($ty:ty, $name:expr, $version:expr $(,)?) => {
        const _: fn() = || {
            fn fits<T: $crate::plugin::StorageOpen>() {}
            fits::<$ty>();
        };

        #[cfg(feature = "dynamic")]
        const _: () = {
            static VTABLE: $crate::plugin::abi::storage::StorageVTable =
                $crate::plugin::abi::storage::StorageVTable::of::<$ty>();
            static DESCRIPTOR: $crate::plugin::abi::PluginDescriptor =
                $crate::plugin::abi::PluginDescriptor::new(
                    $crate::plugin::abi::KIND_STORAGE,
                    $name,
                    $version,
                    &VTABLE as *const $crate::plugin::abi::storage::StorageVTable
                        as *const ::std::ffi::c_void,
                );
            #[unsafe(no_mangle)]
            pub extern "C" fn rivulet_plugin_entry() -> *const $crate::plugin::abi::PluginDescriptor
            {
                &DESCRIPTOR
            }
        };
    };
}

/// Makes `$ty` (a `Tracker` implementing [`TrackerOpen`](crate::plugin::TrackerOpen)) a loadable
/// tracker plugin named `$name`, chosen for announce URLs with one of the given schemes.
///
/// ```ignore
/// rivulet_core::export_tracker!(HttpTracker, "http", env!("CARGO_PKG_VERSION"),
///                               schemes = ["http", "https"]);
/// ```
///
/// The entry symbol is only emitted with the plugin crate's `dynamic` feature; see the
/// [module docs](crate::plugin::abi::export).
#[macro_export]
macro_rules! export_tracker {
    ($ty:ty, $name:expr, $version:expr, schemes = [$($scheme:expr),+ $(,)?] $(,)?) => {
        const _: fn() = || {
            fn fits<T: $crate::plugin::TrackerOpen>() {}
            fits::<$ty>();
        };

        #[cfg(feature = "dynamic")]
        const _: () = {
            const SCHEMES: &[$crate::plugin::abi::RawSlice] =
                &[$($crate::plugin::abi::RawSlice::from_static($scheme)),+];
            static VTABLE: $crate::plugin::abi::tracker::TrackerVTable =
                $crate::plugin::abi::tracker::TrackerVTable::of::<$ty>(SCHEMES);
            static DESCRIPTOR: $crate::plugin::abi::PluginDescriptor =
                $crate::plugin::abi::PluginDescriptor::new(
                    $crate::plugin::abi::KIND_TRACKER,
                    $name,
                    $version,
                    &VTABLE as *const $crate::plugin::abi::tracker::TrackerVTable
                        as *const ::std::ffi::c_void,
                );
            #[unsafe(no_mangle)]
            pub extern "C" fn rivulet_plugin_entry() -> *const $crate::plugin::abi::PluginDescriptor {
                &DESCRIPTOR
            }
        };
    };
}
