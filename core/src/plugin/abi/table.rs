//! [`abi_table!`]: from one list of a trait's methods, everything that carries the trait across
//! the boundary. Adding a method to a plugin trait means adding one line to its list.
//!
//! For a list like
//!
//! ```text
//! fn piece_lost(&mut self, piece: u32);
//! fn has_data(&self, file: usize, offset: u64, len: u64) -> bool => true;
//! ```
//!
//! it generates the `#[repr(C)]` table (one `Option<extern "C" fn>` per method, plus the
//! constructor and `destroy`), its completeness check, the table's fingerprint
//! ([`super::descriptor::fingerprint`] of the list as written), the plugin-side `extern "C"`
//! shims that run the method under [`guard`] (a panic becomes a status, never an unwind), and
//! the host-side wrapper implementing the trait by calling through the table with a [`Poison`]
//! flag, so that an instance that panicked is never called again. How each argument and result
//! crosses is the business of [`super::wire`]. `=> value` says what a failed call of a method
//! that cannot report failure reads as (default: `Default::default()`); such failures are
//! logged.
//!
//! [`guard`]: super::fault::guard
//! [`Poison`]: super::fault::Poison

use crate::plugin::abi::fault::Fault;
use crate::plugin::abi::raw::Handle;

/// The instance behind a handle, refusing null.
///
/// # Safety
/// `handle` must be null or a live handle this plugin created for a `T`.
pub(crate) unsafe fn instance<T>(handle: Handle) -> Result<*mut T, Fault> {
    let ptr = handle.cast::<T>();
    if ptr.is_null() {
        Err(Fault::invalid("null plugin handle"))
    } else {
        Ok(ptr)
    }
}

/// The out-value the host passed, refusing null.
pub(crate) fn out_value<'a, T>(out: *mut T) -> Result<&'a mut T, Fault> {
    // SAFETY: the host passes null or a value valid for the call.
    unsafe { out.as_mut() }.ok_or_else(|| Fault::invalid("null out-pointer"))
}

/// Drops an instance created with [`hand_out`]; a panicking `Drop` is swallowed since there is
/// nobody left to tell.
///
/// # Safety
/// `handle` must be null or a live handle for a `T`; it is invalid afterwards.
pub(crate) unsafe extern "C" fn destroy_instance<T>(handle: Handle) {
    if handle.is_null() {
        return;
    }
    // SAFETY: guaranteed by the caller; ownership passes back from the host.
    let boxed = unsafe { Box::from_raw(handle.cast::<T>()) };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(boxed)));
}

/// Stores a freshly created instance into the host's out-pointer.
pub(crate) fn hand_out<T>(out: *mut Handle, value: T) -> Result<(), Fault> {
    *out_value(out)? = Box::into_raw(Box::new(value)).cast();
    Ok(())
}

/// The type's [`Ret::fallback`](super::wire::Ret::fallback), or the given one.
macro_rules! fallback {
    ($r:ty;) => {
        <$r as $crate::plugin::abi::wire::Ret>::fallback()
    };
    ($r:ty; $fallback:expr) => {
        $fallback
    };
}
pub(crate) use fallback;

macro_rules! abi_table {
    (
        $(#[$tmeta:meta])*
        table $VTable:ident($KIND:path, $word:literal), complete $Fns:ident;
        $(#[$dmeta:meta])*
        host $Dyn:ident: $Trait:path $(, $marker:ident)*;
        plugin [$T:ident: $($bound:tt)+];
        wire [$($wire:ty),* $(,)?];
        new $ctor:ident($($ca:ident: $ct:ty),*) -> $E:ty = $cexpr:expr;
        state $S:ty = $sexpr:expr;
        methods { $($methods:tt)* }
        host_only { $($host_items:tt)* }
    ) => {
        $crate::plugin::abi::table::abi_table!(@munch
            [
                [$(#[$tmeta])*] $VTable $KIND, $word, $Fns;
                [$(#[$dmeta])*] $Dyn, $Trait, [$($marker)*];
                [$T: $($bound)+];
                [$($wire),*];
                $ctor [$($ca: $ct),*] $E = $cexpr;
                $S = $sexpr;
                stringify!($($methods)*);
                [$($host_items)*]
            ]
            []
            $($methods)*
        );
    };

    // Normalises each method to { (receiver mutability) name (args) (result) (fallback) }.
    (@munch $hdr:tt [$($done:tt)*]
        fn $name:ident(&mut self $(, $a:ident: $t:ty)* $(,)?) $(-> $r:ty)? $(=> $fb:expr)?;
        $($rest:tt)*
    ) => {
        $crate::plugin::abi::table::abi_table!(@munch $hdr
            [$($done)* { (mut) $name ($($a: $t),*) ($($r)?) ($($fb)?) }] $($rest)*);
    };
    (@munch $hdr:tt [$($done:tt)*]
        fn $name:ident(&self $(, $a:ident: $t:ty)* $(,)?) $(-> $r:ty)? $(=> $fb:expr)?;
        $($rest:tt)*
    ) => {
        $crate::plugin::abi::table::abi_table!(@munch $hdr
            [$($done)* { () $name ($($a: $t),*) ($($r)?) ($($fb)?) }] $($rest)*);
    };
    (@munch $hdr:tt [$($done:tt)*]) => {
        $crate::plugin::abi::table::abi_table!(@emit $hdr $($done)*);
    };

    (@emit
        [
            [$(#[$tmeta:meta])*] $VTable:ident $KIND:path, $word:literal, $Fns:ident;
            [$(#[$dmeta:meta])*] $Dyn:ident, $Trait:path, [$($marker:ident)*];
            [$T:ident: $($bound:tt)+];
            [$($wire:ty),*];
            $ctor:ident [$($ca:ident: $ct:ty),*] $E:ty = $cexpr:expr;
            $S:ty = $sexpr:expr;
            $signature:expr;
            [$($host_items:tt)*]
        ]
        $({ ($($m:tt)?) $name:ident ($($a:ident: $t:ty),*) ($($r:ty)?) ($($fb:expr)?) })*
    ) => {
        /// What a type must be to be exported with this table.
        pub trait Exportable: $($bound)+ {}
        impl<$T: $($bound)+> Exportable for $T {}

        $(#[$tmeta])*
        // `($($r)?)` spells a method's result, `()` when it has none.
        #[allow(unused_parens)]
        #[repr(C)]
        #[derive(Clone, Copy)]
        pub struct $VTable {
            pub $ctor: Option<
                unsafe extern "C" fn(
                    $(<$ct as $crate::plugin::abi::wire::Arg>::Raw,)*
                    *mut $crate::plugin::abi::raw::Handle,
                    *mut $crate::plugin::abi::fault::ErrorOut,
                ) -> $crate::plugin::abi::raw::Status,
            >,
            pub destroy: Option<unsafe extern "C" fn($crate::plugin::abi::raw::Handle)>,
            $(pub $name: Option<
                unsafe extern "C" fn(
                    $crate::plugin::abi::raw::Handle,
                    $(<$t as $crate::plugin::abi::wire::Arg>::Raw,)*
                    *mut <($($r)?) as $crate::plugin::abi::wire::Ret>::Out,
                    *mut $crate::plugin::abi::fault::ErrorOut,
                ) -> $crate::plugin::abi::raw::Status,
            >,)*
        }

        // SAFETY: a table in a static points only at functions.
        unsafe impl Sync for $VTable {}

        impl $VTable {
            pub const KIND: u32 = $KIND;
            /// The method list the table was generated from.
            pub const METHODS: &'static str = $signature;
            pub const FINGERPRINT: u64 = $crate::plugin::abi::descriptor::fingerprint(
                Self::METHODS,
                &[$($crate::plugin::abi::descriptor::shape::<$wire>()),*],
            );

            /// The table for `T`, instantiated in the plugin crate by its export macro.
            pub const fn of<$T: Exportable>() -> Self {
                $VTable {
                    $ctor: Some(PluginSide::$ctor::<$T>),
                    destroy: Some($crate::plugin::abi::table::destroy_instance::<$T>),
                    $($name: Some(PluginSide::$name::<$T>),)*
                }
            }

            /// The same table, if no entry is missing.
            pub fn check(self) -> Option<$Fns> {
                let complete = self.$ctor.is_some()
                    && self.destroy.is_some()
                    $(&& self.$name.is_some())*;
                complete.then_some($Fns(self))
            }
        }

        /// A table known to have every entry.
        #[derive(Clone, Copy)]
        pub struct $Fns($VTable);

        /// The `extern "C"` functions a plugin's table points at.
        struct PluginSide;

        // SAFETY (every entry): the host passes arguments valid for the call, a handle from the
        // constructor, and a valid ErrorOut.
        #[allow(unused_parens)]
        impl PluginSide {
            unsafe extern "C" fn $ctor<$T: Exportable>(
                $($ca: <$ct as $crate::plugin::abi::wire::Arg>::Raw,)*
                out: *mut $crate::plugin::abi::raw::Handle,
                err: *mut $crate::plugin::abi::fault::ErrorOut,
            ) -> $crate::plugin::abi::raw::Status {
                unsafe {
                    $crate::plugin::abi::fault::guard(err, || {
                        $(
                            let mut $ca = <$ct as $crate::plugin::abi::wire::Arg>::lift($ca)?;
                            let $ca = <$ct as $crate::plugin::abi::wire::Arg>::rebuilt(&mut $ca);
                        )*
                        let value: $T = ($cexpr).map_err($crate::plugin::abi::fault::Fault::from)?;
                        $crate::plugin::abi::table::hand_out(out, value)
                    })
                }
            }

            $(
            unsafe extern "C" fn $name<$T: Exportable>(
                handle: $crate::plugin::abi::raw::Handle,
                $($a: <$t as $crate::plugin::abi::wire::Arg>::Raw,)*
                out: *mut <($($r)?) as $crate::plugin::abi::wire::Ret>::Out,
                err: *mut $crate::plugin::abi::fault::ErrorOut,
            ) -> $crate::plugin::abi::raw::Status {
                unsafe {
                    $crate::plugin::abi::fault::guard(err, || {
                        let this = &$($m)? *$crate::plugin::abi::table::instance::<$T>(handle)?;
                        let out = $crate::plugin::abi::table::out_value(out)?;
                        $(
                            let mut $a = <$t as $crate::plugin::abi::wire::Arg>::lift($a)?;
                            let $a = <$t as $crate::plugin::abi::wire::Arg>::rebuilt(&mut $a);
                        )*
                        let result = <$T as $Trait>::$name(this, $($a),*);
                        <($($r)?) as $crate::plugin::abi::wire::Ret>::put(result, out)
                    })
                }
            }
            )*
        }

        $(#[$dmeta])*
        pub struct $Dyn {
            fns: $Fns,
            handle: $crate::plugin::abi::raw::Handle,
            poison: $crate::plugin::abi::fault::Poison,
            /// "<kind> plugin '<name>'", for messages.
            label: ::std::sync::Arc<str>,
            #[allow(dead_code)]
            state: $S,
            /// Keeps the code behind `fns` mapped; dropped after `handle` is destroyed.
            _library: Option<::std::sync::Arc<libloading::Library>>,
        }

        $(
        // SAFETY: the handle is the plugin's instance, whose type the table's bound makes
        // `$marker` too; `&self` calls reach only `&self` methods of it.
        unsafe impl $marker for $Dyn {}
        )*

        impl $Dyn {
            /// An instance made through `fns`; `library` is where the table lives (`None` for a
            /// table linked into this process).
            pub fn open(
                fns: $Fns,
                name: &str,
                library: Option<::std::sync::Arc<libloading::Library>>,
                $($ca: $ct),*
            ) -> Result<Self, $E> {
                use $crate::plugin::abi::wire::FromFault as _;
                let label: ::std::sync::Arc<str> = format!("{} plugin '{}'", $word, name).into();
                let state = $sexpr;
                $(let $ca = <$ct as $crate::plugin::abi::wire::Arg>::lower($ca);)*
                let poison = $crate::plugin::abi::fault::Poison::default();
                let mut handle: $crate::plugin::abi::raw::Handle = ::std::ptr::null_mut();
                // SAFETY: `check` found every entry present.
                let f = unsafe { fns.0.$ctor.unwrap_unchecked() };
                // SAFETY: the lowered arguments outlive the call.
                poison
                    .call(&label, |err| unsafe {
                        f($(<$ct as $crate::plugin::abi::wire::Arg>::raw(&$ca),)* &mut handle, err)
                    })
                    .map_err(|fault| <$E>::from_fault(fault, &label))?;
                if handle.is_null() {
                    let fault = $crate::plugin::abi::fault::Fault::failed(
                        concat!(stringify!($ctor), " returned no instance"),
                    );
                    return Err(<$E>::from_fault(fault, &label));
                }
                Ok($Dyn { fns, handle, poison, label, state, _library: library })
            }

            /// Why this instance was disabled, if a call panicked.
            pub fn poisoned(&self) -> Option<&str> {
                self.poison.reason()
            }
        }

        #[allow(unused_parens)]
        impl $Trait for $Dyn {
            $(
            fn $name(&$($m)? self, $($a: $t),*) -> ($($r)?) {
                use $crate::plugin::abi::wire::Ret;
                // SAFETY: `check` found every entry present.
                let f = unsafe { self.fns.0.$name.unwrap_unchecked() };
                let handle = self.handle;
                $(let $a = <$t as $crate::plugin::abi::wire::Arg>::lower($a);)*
                let mut out = <($($r)?) as Ret>::EMPTY;
                // SAFETY: a live handle, a complete table; the lowered arguments and `out`
                // outlive the call, and `out` is taken only after the plugin reported success.
                let called = self
                    .poison
                    .call(&self.label, |err| unsafe {
                        f(
                            handle,
                            $(<$t as $crate::plugin::abi::wire::Arg>::raw(&$a),)*
                            &mut out,
                            err,
                        )
                    })
                    .and_then(|()| unsafe { <($($r)?) as Ret>::take(&mut out) })
                    .or_else(|fault| <($($r)?) as Ret>::failed(fault, &self.label));
                match called {
                    Ok(value) => value,
                    Err(fault) => {
                        if !fault.is_panic() {
                            tracing::warn!(
                                "{} {} failed: {fault}",
                                self.label,
                                stringify!($name)
                            );
                        }
                        $crate::plugin::abi::table::fallback!(($($r)?); $($fb)?)
                    }
                }
            }
            )*

            $($host_items)*
        }

        impl Drop for $Dyn {
            fn drop(&mut self) {
                // A poisoned instance may be in any state; leaking it is safer than running its
                // Drop.
                if self.poison.reason().is_none() {
                    // SAFETY: `check` found every entry present; the handle is live and never
                    // used again.
                    unsafe { (self.fns.0.destroy.unwrap_unchecked())(self.handle) };
                }
            }
        }
    };
}
pub(crate) use abi_table;
