//! How each argument and result type of a plugin trait crosses the boundary, so that a trait's
//! table is generated from its method list alone ([`super::table`]).
//!
//! An argument is lowered by the host into something it keeps alive for the call, passed as a
//! `#[repr(C)]` raw value, and lifted by the plugin into what the trait method takes. A result
//! is put by the plugin into a host-owned out-value (or, for an error, into the `ErrorOut`) and
//! taken back by the host.

use crate::plugin::abi::fault::Fault;
use crate::plugin::abi::raw::{RawSlice, RawSliceMut};
use crate::plugin::storage::StorageError;
use crate::plugin::tracker::TrackerError;

/// A trait-method argument type.
pub trait Arg {
    /// What crosses.
    type Raw: Copy;
    /// Host side: what must outlive the call because `Raw` points into it.
    type Lowered;
    /// Plugin side: what `Raw` is rebuilt into.
    type Lifted;
    /// Plugin side: the argument as the trait method takes it, borrowing the lifted value.
    type Rebuilt<'l>
    where
        Self: 'l;

    fn lower(self) -> Self::Lowered;
    fn raw(lowered: &Self::Lowered) -> Self::Raw;
    /// # Safety
    /// `raw` must come from [`Arg::raw`] of a value the host keeps alive during the call.
    unsafe fn lift(raw: Self::Raw) -> Result<Self::Lifted, Fault>;
    /// # Safety
    /// As for [`Arg::lift`].
    unsafe fn rebuilt(lifted: &mut Self::Lifted) -> Self::Rebuilt<'_>;
}

/// A trait-method result type.
pub trait Ret: Sized {
    /// The host-owned value the plugin fills on success.
    type Out;
    /// What the host passes before the call.
    const EMPTY: Self::Out;
    /// Plugin side: stores a result, or turns it into the fault the call fails with.
    fn put(self, out: &mut Self::Out) -> Result<(), Fault>;
    /// Host side, after a successful call.
    ///
    /// # Safety
    /// `out` must be as the plugin's `put` left it.
    unsafe fn take(out: &mut Self::Out) -> Result<Self, Fault>;
    /// Host side: the value a failed call stands for, for types that can carry a failure; other
    /// types hand the fault back and the caller uses the method's fallback.
    fn failed(fault: Fault, plugin: &str) -> Result<Self, Fault> {
        let _ = plugin;
        Err(fault)
    }
    /// What a failed call of a method that cannot report failure reads as, unless its list
    /// entry says otherwise (`=> value`).
    fn fallback() -> Self;
}

/// An error type a plugin's failure turns into on the host; `plugin` names the plugin.
pub trait FromFault {
    fn from_fault(fault: Fault, plugin: &str) -> Self;
}

impl FromFault for Fault {
    fn from_fault(fault: Fault, _: &str) -> Self {
        fault
    }
}

impl FromFault for StorageError {
    fn from_fault(fault: Fault, plugin: &str) -> Self {
        fault.into_storage_error(plugin)
    }
}

impl FromFault for TrackerError {
    fn from_fault(fault: Fault, plugin: &str) -> Self {
        fault.into_tracker_error(plugin)
    }
}

/// An optional scalar: `some` is 0 or 1.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Opt<T> {
    pub some: u8,
    pub value: T,
}

macro_rules! scalar_args {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            type Raw = $t;
            type Lowered = $t;
            type Lifted = $t;
            type Rebuilt<'l> = $t;

            fn lower(self) -> $t {
                self
            }
            fn raw(lowered: &$t) -> $t {
                *lowered
            }
            unsafe fn lift(raw: $t) -> Result<$t, Fault> {
                Ok(raw)
            }
            unsafe fn rebuilt(lifted: &mut $t) -> $t {
                *lifted
            }
        }
    )*};
}

scalar_args!(u32, u64, usize);

impl Arg for Option<u64> {
    type Raw = Opt<u64>;
    type Lowered = Opt<u64>;
    type Lifted = Option<u64>;
    type Rebuilt<'l> = Option<u64>;

    fn lower(self) -> Opt<u64> {
        Opt {
            some: u8::from(self.is_some()),
            value: self.unwrap_or(0),
        }
    }
    fn raw(lowered: &Opt<u64>) -> Opt<u64> {
        *lowered
    }
    unsafe fn lift(raw: Opt<u64>) -> Result<Option<u64>, Fault> {
        Ok((raw.some != 0).then_some(raw.value))
    }
    unsafe fn rebuilt(lifted: &mut Option<u64>) -> Option<u64> {
        *lifted
    }
}

impl Arg for &[u8] {
    type Raw = RawSlice;
    type Lowered = RawSlice;
    type Lifted = RawSlice;
    type Rebuilt<'l>
        = &'l [u8]
    where
        Self: 'l;

    fn lower(self) -> RawSlice {
        RawSlice::borrow(self)
    }
    fn raw(lowered: &RawSlice) -> RawSlice {
        *lowered
    }
    unsafe fn lift(raw: RawSlice) -> Result<RawSlice, Fault> {
        Ok(raw)
    }
    unsafe fn rebuilt(lifted: &mut RawSlice) -> &[u8] {
        // SAFETY: the host keeps the bytes alive for the call.
        unsafe { lifted.as_bytes() }
    }
}

impl Arg for &mut [u8] {
    type Raw = RawSliceMut;
    type Lowered = RawSliceMut;
    type Lifted = RawSliceMut;
    type Rebuilt<'l>
        = &'l mut [u8]
    where
        Self: 'l;

    fn lower(self) -> RawSliceMut {
        RawSliceMut {
            ptr: self.as_mut_ptr(),
            len: self.len(),
        }
    }
    fn raw(lowered: &RawSliceMut) -> RawSliceMut {
        *lowered
    }
    unsafe fn lift(raw: RawSliceMut) -> Result<RawSliceMut, Fault> {
        Ok(raw)
    }
    unsafe fn rebuilt(lifted: &mut RawSliceMut) -> &mut [u8] {
        if lifted.ptr.is_null() || lifted.len == 0 {
            return &mut [];
        }
        // SAFETY: the host lends the buffer, exclusively, for the call.
        unsafe { std::slice::from_raw_parts_mut(lifted.ptr, lifted.len) }
    }
}

impl Arg for &str {
    type Raw = RawSlice;
    type Lowered = RawSlice;
    type Lifted = RawSlice;
    type Rebuilt<'l>
        = &'l str
    where
        Self: 'l;

    fn lower(self) -> RawSlice {
        RawSlice::borrow(self.as_bytes())
    }
    fn raw(lowered: &RawSlice) -> RawSlice {
        *lowered
    }
    unsafe fn lift(raw: RawSlice) -> Result<RawSlice, Fault> {
        // SAFETY: the host keeps the bytes alive for the call.
        unsafe { raw.as_str() }.map_err(|_| Fault::invalid("text is not UTF-8"))?;
        Ok(raw)
    }
    unsafe fn rebuilt(lifted: &mut RawSlice) -> &str {
        // SAFETY: checked UTF-8 in `lift`; alive for the call.
        unsafe { std::str::from_utf8_unchecked(lifted.as_bytes()) }
    }
}

impl Ret for () {
    type Out = u8;
    const EMPTY: u8 = 0;

    fn put(self, _: &mut u8) -> Result<(), Fault> {
        Ok(())
    }
    unsafe fn take(_: &mut u8) -> Result<(), Fault> {
        Ok(())
    }
    fn fallback() {}
}

impl Ret for bool {
    type Out = u8;
    const EMPTY: u8 = 0;

    fn put(self, out: &mut u8) -> Result<(), Fault> {
        *out = u8::from(self);
        Ok(())
    }
    unsafe fn take(out: &mut u8) -> Result<bool, Fault> {
        Ok(*out != 0)
    }
    fn fallback() -> bool {
        false
    }
}

impl Ret for Option<u32> {
    type Out = Opt<u32>;
    const EMPTY: Opt<u32> = Opt { some: 0, value: 0 };

    fn put(self, out: &mut Opt<u32>) -> Result<(), Fault> {
        *out = Opt {
            some: u8::from(self.is_some()),
            value: self.unwrap_or(0),
        };
        Ok(())
    }
    unsafe fn take(out: &mut Opt<u32>) -> Result<Option<u32>, Fault> {
        Ok((out.some != 0).then_some(out.value))
    }
    fn fallback() -> Self {
        None
    }
}

/// A reason something broke ([`crate::plugin::PiecePicker::fault`]): it crosses as a failed
/// call, and a plugin that broke on its own reads as its own reason.
impl Ret for Option<String> {
    type Out = u8;
    const EMPTY: u8 = 0;

    fn put(self, _: &mut u8) -> Result<(), Fault> {
        match self {
            Some(reason) => Err(Fault::failed(reason)),
            None => Ok(()),
        }
    }
    unsafe fn take(_: &mut u8) -> Result<Option<String>, Fault> {
        Ok(None)
    }
    fn failed(fault: Fault, plugin: &str) -> Result<Self, Fault> {
        Ok(Some(if fault.is_panic() {
            format!("{plugin} panicked: {}", fault.message())
        } else {
            format!("{plugin}: {fault}")
        }))
    }
    fn fallback() -> Self {
        None
    }
}

impl<T: Ret, E: FromFault + Into<Fault>> Ret for Result<T, E> {
    type Out = T::Out;
    const EMPTY: T::Out = T::EMPTY;

    fn put(self, out: &mut T::Out) -> Result<(), Fault> {
        self.map_err(Into::into)?.put(out)
    }
    unsafe fn take(out: &mut T::Out) -> Result<Self, Fault> {
        // SAFETY: guaranteed by the caller.
        unsafe { T::take(out) }.map(Ok)
    }
    fn failed(fault: Fault, plugin: &str) -> Result<Self, Fault> {
        Ok(Err(E::from_fault(fault, plugin)))
    }
    /// Never used: [`Ret::failed`] always carries the failure as `Err`.
    fn fallback() -> Self {
        Err(E::from_fault(Fault::failed("no answer"), "plugin"))
    }
}
