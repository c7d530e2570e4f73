//! Iterating the set pieces of a bitfield a word at a time.

use rivulet_core::bitfield::Bitfield;

/// The set pieces of `bf`, ascending; skips 64 clear pieces per step.
pub(crate) fn set_bits(bf: &Bitfield) -> impl Iterator<Item = u32> + '_ {
    (0..bf.word_count()).flat_map(move |w| {
        let mut word = bf.word(w);
        std::iter::from_fn(move || {
            if word == 0 {
                return None;
            }
            let bit = word.leading_zeros();
            word &= !(1u64 << 63 >> bit);
            Some(w as u32 * 64 + bit)
        })
    })
}
