//! A [`PiecePicker`] across the boundary: the C table, the plugin-side functions that fill it for
//! any `T: PiecePicker + Default`, and [`DynPicker`], the host-side picker that calls through it.

use std::collections::HashMap;
use std::sync::Arc;

use super::fault::{Poison, guard};
use super::*;
use crate::bitfield::Bitfield;
use crate::plugin::{PeerKey, PiecePicker};

/// A bitfield borrowed for one call: its wire bytes and its length in pieces.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BitfieldRef {
    pub bytes: RawSlice,
    pub pieces: u32,
}

impl BitfieldRef {
    fn borrow(b: &Bitfield) -> Self {
        BitfieldRef {
            bytes: RawSlice::borrow(b.as_bytes()),
            pieces: b.len(),
        }
    }

    /// # Safety
    /// `bytes` must be valid for the call.
    unsafe fn to_bitfield(self) -> Result<Bitfield, Fault> {
        // SAFETY: guaranteed by the caller.
        Bitfield::from_wire(unsafe { self.bytes.as_bytes() }, self.pieces)
            .map_err(|e| Fault::invalid(&e.to_string()))
    }
}

type Status = i32;

/// One entry per [`PiecePicker`] method, plus create/destroy. Every entry returns a status and
/// fills the `ErrorOut` on failure. Entries are `Option` so that a table with a hole is refused at
/// load time instead of being called.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PickerVTable {
    pub create: Option<unsafe extern "C" fn(out: *mut Handle, err: *mut ErrorOut) -> Status>,
    pub destroy: Option<unsafe extern "C" fn(h: Handle)>,
    pub init: Option<
        unsafe extern "C" fn(
            h: Handle,
            pieces: u32,
            have: BitfieldRef,
            err: *mut ErrorOut,
        ) -> Status,
    >,
    pub peer_bitfield: Option<
        unsafe extern "C" fn(h: Handle, peer: u32, has: BitfieldRef, err: *mut ErrorOut) -> Status,
    >,
    pub peer_have: Option<
        unsafe extern "C" fn(h: Handle, peer: u32, piece: u32, err: *mut ErrorOut) -> Status,
    >,
    pub peer_left: Option<unsafe extern "C" fn(h: Handle, peer: u32, err: *mut ErrorOut) -> Status>,
    pub piece_verified:
        Option<unsafe extern "C" fn(h: Handle, piece: u32, err: *mut ErrorOut) -> Status>,
    pub piece_lost:
        Option<unsafe extern "C" fn(h: Handle, piece: u32, err: *mut ErrorOut) -> Status>,
    /// `has_deadline == 0` means no deadline (`deadline_ms` is then ignored).
    pub set_deadline: Option<
        unsafe extern "C" fn(
            h: Handle,
            piece: u32,
            has_deadline: u8,
            deadline_ms: u64,
            err: *mut ErrorOut,
        ) -> Status,
    >,
    /// Sets `*found` to 1 and `*piece` to the pick, or `*found` to 0.
    pub pick: Option<
        unsafe extern "C" fn(
            h: Handle,
            peer: u32,
            has: BitfieldRef,
            piece: *mut u32,
            found: *mut u8,
            err: *mut ErrorOut,
        ) -> Status,
    >,
    /// [`PiecePicker::fault`]: returns [`STATUS_FAILED`] with the reason if the picker is broken,
    /// [`STATUS_OK`] if it is not.
    pub fault: Option<unsafe extern "C" fn(h: Handle, err: *mut ErrorOut) -> Status>,
}

impl PickerVTable {
    /// The table for `T`, instantiated in the plugin crate by [`crate::export_picker!`].
    pub const fn of<T: PiecePicker + Default>() -> Self {
        PickerVTable {
            create: Some(create::<T>),
            destroy: Some(destroy_instance::<Instance<T>>),
            init: Some(init::<T>),
            peer_bitfield: Some(peer_bitfield::<T>),
            peer_have: Some(peer_have::<T>),
            peer_left: Some(peer_left::<T>),
            piece_verified: Some(piece_verified::<T>),
            piece_lost: Some(piece_lost::<T>),
            set_deadline: Some(set_deadline::<T>),
            pick: Some(pick::<T>),
            fault: Some(fault::<T>),
        }
    }

    /// The same table with every entry checked present, or `None` if one is missing.
    pub fn check(&self) -> Option<PickerFns> {
        Some(PickerFns {
            create: self.create?,
            destroy: self.destroy?,
            init: self.init?,
            peer_bitfield: self.peer_bitfield?,
            peer_have: self.peer_have?,
            peer_left: self.peer_left?,
            piece_verified: self.piece_verified?,
            piece_lost: self.piece_lost?,
            set_deadline: self.set_deadline?,
            pick: self.pick?,
            fault: self.fault?,
        })
    }
}

/// A [`PickerVTable`] known to be complete.
#[derive(Clone, Copy, Debug)]
pub struct PickerFns {
    create: unsafe extern "C" fn(*mut Handle, *mut ErrorOut) -> Status,
    destroy: unsafe extern "C" fn(Handle),
    init: unsafe extern "C" fn(Handle, u32, BitfieldRef, *mut ErrorOut) -> Status,
    peer_bitfield: unsafe extern "C" fn(Handle, u32, BitfieldRef, *mut ErrorOut) -> Status,
    peer_have: unsafe extern "C" fn(Handle, u32, u32, *mut ErrorOut) -> Status,
    peer_left: unsafe extern "C" fn(Handle, u32, *mut ErrorOut) -> Status,
    piece_verified: unsafe extern "C" fn(Handle, u32, *mut ErrorOut) -> Status,
    piece_lost: unsafe extern "C" fn(Handle, u32, *mut ErrorOut) -> Status,
    set_deadline: unsafe extern "C" fn(Handle, u32, u8, u64, *mut ErrorOut) -> Status,
    pick:
        unsafe extern "C" fn(Handle, u32, BitfieldRef, *mut u32, *mut u8, *mut ErrorOut) -> Status,
    fault: unsafe extern "C" fn(Handle, *mut ErrorOut) -> Status,
}

/// What a picker handle points at: the plugin's picker and, per peer, the last bitfield `pick`
/// was given. Rebuilding a [`Bitfield`] from wire bytes costs microseconds on 100,000 pieces
/// (a copy and a population count); comparing with the last one is a `memcmp`, and a peer's
/// bitfield rarely changes between picks.
#[derive(Default)]
struct Instance<T> {
    picker: T,
    seen: HashMap<PeerKey, Bitfield>,
}

/// Runs a method that cannot fail on the instance behind `h`.
///
/// # Safety
/// As for [`instance`] and [`guard`].
unsafe fn on<T: PiecePicker>(h: Handle, err: *mut ErrorOut, f: impl FnOnce(&mut T)) -> Status {
    unsafe {
        guard(err, || {
            f(&mut instance::<Instance<T>>(h)?.picker);
            Ok(())
        })
    }
}

unsafe extern "C" fn create<T: PiecePicker + Default>(
    out: *mut Handle,
    err: *mut ErrorOut,
) -> Status {
    // SAFETY (all entries below): the host passes a handle from `create` and a valid ErrorOut.
    unsafe { guard(err, || hand_out(out, Instance::<T>::default())) }
}

unsafe extern "C" fn init<T: PiecePicker>(
    h: Handle,
    pieces: u32,
    have: BitfieldRef,
    err: *mut ErrorOut,
) -> Status {
    unsafe {
        guard(err, || {
            let have = have.to_bitfield()?;
            instance::<Instance<T>>(h)?.picker.init(pieces, &have);
            Ok(())
        })
    }
}

unsafe extern "C" fn peer_bitfield<T: PiecePicker>(
    h: Handle,
    peer: u32,
    has: BitfieldRef,
    err: *mut ErrorOut,
) -> Status {
    unsafe {
        guard(err, || {
            let has = has.to_bitfield()?;
            instance::<Instance<T>>(h)?.picker.peer_bitfield(peer, &has);
            Ok(())
        })
    }
}

unsafe extern "C" fn peer_have<T: PiecePicker>(
    h: Handle,
    peer: u32,
    piece: u32,
    err: *mut ErrorOut,
) -> Status {
    unsafe { on::<T>(h, err, |p| p.peer_have(peer, piece)) }
}

unsafe extern "C" fn peer_left<T: PiecePicker>(h: Handle, peer: u32, err: *mut ErrorOut) -> Status {
    unsafe {
        guard(err, || {
            let instance = instance::<Instance<T>>(h)?;
            instance.seen.remove(&peer);
            instance.picker.peer_left(peer);
            Ok(())
        })
    }
}

unsafe extern "C" fn piece_verified<T: PiecePicker>(
    h: Handle,
    piece: u32,
    err: *mut ErrorOut,
) -> Status {
    unsafe { on::<T>(h, err, |p| p.piece_verified(piece)) }
}

unsafe extern "C" fn piece_lost<T: PiecePicker>(
    h: Handle,
    piece: u32,
    err: *mut ErrorOut,
) -> Status {
    unsafe { on::<T>(h, err, |p| p.piece_lost(piece)) }
}

unsafe extern "C" fn set_deadline<T: PiecePicker>(
    h: Handle,
    piece: u32,
    has_deadline: u8,
    deadline_ms: u64,
    err: *mut ErrorOut,
) -> Status {
    let deadline = (has_deadline != 0).then_some(deadline_ms);
    unsafe { on::<T>(h, err, |p| p.set_deadline(piece, deadline)) }
}

unsafe extern "C" fn pick<T: PiecePicker>(
    h: Handle,
    peer: u32,
    has: BitfieldRef,
    piece: *mut u32,
    found: *mut u8,
    err: *mut ErrorOut,
) -> Status {
    unsafe {
        guard(err, || {
            if piece.is_null() || found.is_null() {
                return Err(Fault::invalid("null out-pointer for the pick"));
            }
            let Instance { picker, seen } = instance::<Instance<T>>(h)?;
            let bytes = has.bytes.as_bytes();
            let has = match seen.get(&peer) {
                Some(known) if known.len() == has.pieces && known.as_bytes() == bytes => known,
                _ => {
                    seen.insert(peer, has.to_bitfield()?);
                    &seen[&peer]
                }
            };
            match picker.pick(peer, has) {
                Some(p) => {
                    piece.write(p);
                    found.write(1);
                }
                None => found.write(0),
            }
            Ok(())
        })
    }
}

unsafe extern "C" fn fault<T: PiecePicker>(h: Handle, err: *mut ErrorOut) -> Status {
    unsafe {
        guard(err, || match instance::<Instance<T>>(h)?.picker.fault() {
            Some(reason) => Err(Fault::failed(reason)),
            None => Ok(()),
        })
    }
}

/// A picker living in a plugin library, used like any other [`PiecePicker`].
///
/// The trait's methods cannot return errors, so a failure is logged and, for `pick`, reads as
/// "nothing to pick". After a panic the instance is poisoned: it is never called again and every
/// `pick` returns `None`; [`PiecePicker::fault`] and [`DynPicker::poisoned`] say so, and
/// [`DynPicker::try_pick`] reports errors for callers that want them.
pub struct DynPicker {
    fns: PickerFns,
    handle: Handle,
    poison: Poison,
    name: Arc<str>,
    /// Keeps the code behind `fns` mapped; dropped after `handle` is destroyed.
    _library: Option<Arc<libloading::Library>>,
}

// SAFETY: the handle is a `T: PiecePicker` (which is `Send`) created by the plugin; `&mut self`
// on every call keeps access exclusive.
unsafe impl Send for DynPicker {}

impl DynPicker {
    /// Creates an instance through `fns`. `library` is the library the table lives in (`None`
    /// for a table linked into this process).
    pub fn create(
        fns: PickerFns,
        name: Arc<str>,
        library: Option<Arc<libloading::Library>>,
    ) -> Result<Self, Fault> {
        let poison = Poison::default();
        let mut handle: Handle = std::ptr::null_mut();
        // SAFETY: `fns` is a complete table from a loaded plugin; the pointers are valid.
        poison.call(&name, |err| unsafe { (fns.create)(&mut handle, err) })?;
        if handle.is_null() {
            return Err(Fault::failed("create returned no instance"));
        }
        Ok(DynPicker {
            fns,
            handle,
            poison,
            name,
            _library: library,
        })
    }

    /// Why this instance was disabled, if a call panicked.
    pub fn poisoned(&self) -> Option<&str> {
        self.poison.reason()
    }

    /// [`PiecePicker::pick`], reporting failures.
    pub fn try_pick(&mut self, peer: PeerKey, peer_has: &Bitfield) -> Result<Option<u32>, Fault> {
        let (mut piece, mut found) = (0u32, 0u8);
        let (f, h, has) = (self.fns.pick, self.handle, BitfieldRef::borrow(peer_has));
        // SAFETY: live handle, complete table, `peer_has` outlives the call.
        self.poison.call(&self.name, |err| unsafe {
            f(h, peer, has, &mut piece, &mut found, err)
        })?;
        Ok((found != 0).then_some(piece))
    }

    fn notify(&mut self, call: impl FnOnce(Handle, *mut ErrorOut) -> Status) {
        let h = self.handle;
        if let Err(fault) = self.poison.call(&self.name, |err| call(h, err))
            && !fault.is_panic()
        {
            tracing::warn!(plugin = &*self.name, "picker plugin call failed: {fault}");
        }
    }
}

// SAFETY (every call below): live handle from `create`, complete table, borrowed arguments
// outlive the call.
impl PiecePicker for DynPicker {
    fn init(&mut self, pieces: u32, have: &Bitfield) {
        let (f, have) = (self.fns.init, BitfieldRef::borrow(have));
        self.notify(|h, err| unsafe { f(h, pieces, have, err) });
    }

    fn peer_bitfield(&mut self, peer: PeerKey, has: &Bitfield) {
        let (f, has) = (self.fns.peer_bitfield, BitfieldRef::borrow(has));
        self.notify(|h, err| unsafe { f(h, peer, has, err) });
    }

    fn peer_have(&mut self, peer: PeerKey, piece: u32) {
        let f = self.fns.peer_have;
        self.notify(|h, err| unsafe { f(h, peer, piece, err) });
    }

    fn peer_left(&mut self, peer: PeerKey) {
        let f = self.fns.peer_left;
        self.notify(|h, err| unsafe { f(h, peer, err) });
    }

    fn piece_verified(&mut self, piece: u32) {
        let f = self.fns.piece_verified;
        self.notify(|h, err| unsafe { f(h, piece, err) });
    }

    fn piece_lost(&mut self, piece: u32) {
        let f = self.fns.piece_lost;
        self.notify(|h, err| unsafe { f(h, piece, err) });
    }

    fn set_deadline(&mut self, piece: u32, deadline_ms: Option<u64>) {
        let f = self.fns.set_deadline;
        let (has, ms) = (u8::from(deadline_ms.is_some()), deadline_ms.unwrap_or(0));
        self.notify(|h, err| unsafe { f(h, piece, has, ms, err) });
    }

    fn pick(&mut self, peer: PeerKey, peer_has: &Bitfield) -> Option<u32> {
        match self.try_pick(peer, peer_has) {
            Ok(pick) => pick,
            Err(fault) => {
                if !fault.is_panic() {
                    tracing::warn!(plugin = &*self.name, "picker plugin pick failed: {fault}");
                }
                None
            }
        }
    }

    fn fault(&self) -> Option<String> {
        if let Some(reason) = self.poisoned() {
            return Some(format!("picker plugin '{}' panicked: {reason}", self.name));
        }
        let (f, h) = (self.fns.fault, self.handle);
        // SAFETY: live handle, complete table.
        match self.poison.call(&self.name, |err| unsafe { f(h, err) }) {
            Ok(()) => None,
            Err(fault) if fault.is_panic() => Some(format!(
                "picker plugin '{}' panicked: {}",
                self.name,
                fault.message()
            )),
            Err(fault) => Some(format!("picker plugin '{}': {fault}", self.name)),
        }
    }
}

impl Drop for DynPicker {
    fn drop(&mut self) {
        // A poisoned instance may be in any state; leaking it is safer than running its Drop.
        if self.poison.reason().is_none() {
            // SAFETY: the handle is live and never used again.
            unsafe { (self.fns.destroy)(self.handle) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Picks the lowest wanted piece the peer has; panics when asked about peer 13.
    #[derive(Default)]
    struct Lowest {
        have: Bitfield,
    }

    impl PiecePicker for Lowest {
        fn init(&mut self, _pieces: u32, have: &Bitfield) {
            self.have = have.clone();
        }
        fn peer_bitfield(&mut self, _: PeerKey, _: &Bitfield) {}
        fn peer_have(&mut self, _: PeerKey, _: u32) {}
        fn peer_left(&mut self, _: PeerKey) {}
        fn piece_verified(&mut self, piece: u32) {
            self.have.set(piece);
        }
        fn piece_lost(&mut self, piece: u32) {
            self.have.clear(piece);
        }
        fn set_deadline(&mut self, _: u32, _: Option<u64>) {}
        fn pick(&mut self, peer: PeerKey, peer_has: &Bitfield) -> Option<u32> {
            if peer == 13 {
                panic!("unlucky peer");
            }
            peer_has.ones().find(|&p| !self.have.get(p))
        }
    }

    static TABLE: PickerVTable = PickerVTable::of::<Lowest>();

    fn picker() -> DynPicker {
        DynPicker::create(TABLE.check().unwrap(), "lowest".into(), None).unwrap()
    }

    #[test]
    fn calls_cross_the_table_and_a_panic_poisons() {
        let mut p = picker();
        assert_eq!(p.fault(), None);
        p.init(10, &Bitfield::new(10));
        let all = Bitfield::full(10);
        assert_eq!(p.pick(1, &all), Some(0));
        p.piece_verified(0);
        assert_eq!(p.pick(1, &all), Some(1));
        p.piece_lost(0);
        assert_eq!(p.try_pick(1, &all).unwrap(), Some(0));

        assert_eq!(p.try_pick(13, &all).unwrap_err().message(), "unlucky peer");
        assert_eq!(p.poisoned(), Some("unlucky peer"));
        assert_eq!(
            p.fault().as_deref(),
            Some("picker plugin 'lowest' panicked: unlucky peer")
        );
        assert_eq!(p.pick(1, &all), None);
        assert_eq!(p.try_pick(1, &all).unwrap_err().status, STATUS_POISONED);
    }

    /// Never picks, and says why.
    #[derive(Default)]
    struct Tired;

    impl PiecePicker for Tired {
        fn init(&mut self, _: u32, _: &Bitfield) {}
        fn peer_bitfield(&mut self, _: PeerKey, _: &Bitfield) {}
        fn peer_have(&mut self, _: PeerKey, _: u32) {}
        fn peer_left(&mut self, _: PeerKey) {}
        fn piece_verified(&mut self, _: u32) {}
        fn piece_lost(&mut self, _: u32) {}
        fn set_deadline(&mut self, _: u32, _: Option<u64>) {}
        fn pick(&mut self, _: PeerKey, _: &Bitfield) -> Option<u32> {
            None
        }
        fn fault(&self) -> Option<String> {
            Some("too tired to pick".into())
        }
    }

    static TIRED: PickerVTable = PickerVTable::of::<Tired>();

    #[test]
    fn a_pickers_own_fault_crosses_the_table_without_poisoning() {
        let mut p = DynPicker::create(TIRED.check().unwrap(), "tired".into(), None).unwrap();
        assert_eq!(p.pick(1, &Bitfield::full(4)), None);
        assert_eq!(
            p.fault().as_deref(),
            Some("picker plugin 'tired': too tired to pick")
        );
        assert_eq!(p.poisoned(), None);
    }

    #[test]
    fn a_table_with_a_hole_is_refused() {
        let mut table = PickerVTable::of::<Lowest>();
        table.pick = None;
        assert!(table.check().is_none());
    }
}
