//! A [`PiecePicker`] across the boundary: its method list, from which [`abi_table!`] makes the
//! C table, the plugin-side shims and [`DynPicker`]; and how a [`Bitfield`] crosses.

use crate::bitfield::Bitfield;
use crate::plugin::abi::descriptor::KIND_PICKER;
use crate::plugin::abi::fault::Fault;
use crate::plugin::abi::raw::RawSlice;
use crate::plugin::abi::table::abi_table;
use crate::plugin::abi::wire::{Arg, Opt};
use crate::plugin::picker::{PeerKey, PiecePicker};

/// A bitfield borrowed for one call: its wire bytes and its length in pieces.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BitfieldRef {
    pub bytes: RawSlice,
    pub pieces: u32,
}

impl Arg for &Bitfield {
    type Raw = BitfieldRef;
    type Lowered = BitfieldRef;
    type Lifted = Bitfield;
    type Rebuilt<'l>
        = &'l Bitfield
    where
        Self: 'l;

    fn lower(self) -> BitfieldRef {
        BitfieldRef {
            bytes: RawSlice::borrow(self.as_bytes()),
            pieces: self.len(),
        }
    }
    fn raw(lowered: &BitfieldRef) -> BitfieldRef {
        *lowered
    }
    unsafe fn lift(raw: BitfieldRef) -> Result<Bitfield, Fault> {
        // SAFETY: the host keeps the bytes alive for the call.
        Bitfield::from_wire(unsafe { raw.bytes.as_bytes() }, raw.pieces)
            .map_err(|e| Fault::invalid(&e.to_string()))
    }
    unsafe fn rebuilt(lifted: &mut Bitfield) -> &Bitfield {
        lifted
    }
}

abi_table! {
    /// One entry per [`PiecePicker`] method, plus create/destroy. Entries are `Option` so that a
    /// table with a hole is refused at load time instead of being called.
    table PickerVTable(KIND_PICKER, "picker"), complete PickerFns;
    /// A picker living in a plugin library, used like any other [`PiecePicker`].
    ///
    /// The trait's methods cannot return errors, so a failure is logged and, for `pick`, reads
    /// as "nothing to pick". After a panic the instance is poisoned: it is never called again,
    /// every `pick` returns `None`, and [`PiecePicker::fault`] and [`DynPicker::poisoned`] say
    /// why.
    host DynPicker: PiecePicker, Send;
    plugin [T: PiecePicker + Default];
    wire [BitfieldRef, Opt<u32>, Opt<u64>];
    new create() -> Fault = Ok::<T, Fault>(T::default());
    state () = ();
    methods {
        fn init(&mut self, pieces: u32, have: &Bitfield);
        fn peer_bitfield(&mut self, peer: PeerKey, has: &Bitfield);
        fn peer_have(&mut self, peer: PeerKey, piece: u32);
        fn peer_left(&mut self, peer: PeerKey);
        fn piece_verified(&mut self, piece: u32);
        fn piece_lost(&mut self, piece: u32);
        fn set_deadline(&mut self, piece: u32, deadline_ms: Option<u64>);
        fn pick(&mut self, peer: PeerKey) -> Option<u32>;
        fn fault(&self) -> Option<String>;
    }
    host_only {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Picks the lowest piece it does not have; panics when asked about peer 13.
    #[derive(Default)]
    struct Lowest {
        have: Bitfield,
    }

    impl PiecePicker for Lowest {
        fn init(&mut self, _pieces: u32, have: &Bitfield) {
            self.have = have.clone();
        }
        fn piece_verified(&mut self, piece: u32) {
            self.have.set(piece);
        }
        fn piece_lost(&mut self, piece: u32) {
            self.have.clear(piece);
        }
        fn pick(&mut self, peer: PeerKey) -> Option<u32> {
            if peer == 13 {
                panic!("unlucky peer");
            }
            (0..self.have.len()).find(|&p| !self.have.get(p))
        }
    }

    static TABLE: PickerVTable = PickerVTable::of::<Lowest>();

    fn picker() -> DynPicker {
        DynPicker::open(TABLE.check().unwrap(), "lowest", None).unwrap()
    }

    #[test]
    fn calls_cross_the_table_and_a_panic_poisons() {
        let mut p = picker();
        assert_eq!(p.fault(), None);
        p.init(10, &Bitfield::new(10));
        assert_eq!(p.pick(1), Some(0));
        p.piece_verified(0);
        assert_eq!(p.pick(1), Some(1));
        p.piece_lost(0);
        assert_eq!(p.pick(1), Some(0));

        assert_eq!(p.pick(13), None);
        assert_eq!(p.poisoned(), Some("unlucky peer"));
        assert_eq!(
            p.fault().as_deref(),
            Some("picker plugin 'lowest' panicked: unlucky peer")
        );
        assert_eq!(p.pick(1), None, "a poisoned picker is never called again");
    }

    /// Never picks, and says why.
    #[derive(Default)]
    struct Tired;

    impl PiecePicker for Tired {
        fn init(&mut self, _: u32, _: &Bitfield) {}
        fn pick(&mut self, _: PeerKey) -> Option<u32> {
            None
        }
        fn fault(&self) -> Option<String> {
            Some("too tired to pick".into())
        }
    }

    static TIRED: PickerVTable = PickerVTable::of::<Tired>();

    #[test]
    fn a_pickers_own_fault_crosses_the_table_without_poisoning() {
        let mut p = DynPicker::open(TIRED.check().unwrap(), "tired", None).unwrap();
        assert_eq!(p.pick(1), None);
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
