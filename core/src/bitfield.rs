//! A piece bitfield in BEP 3 wire order (piece 0 is the high bit of byte 0).

/// A fixed-length set of piece indexes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
    ones: u32,
}

/// Why a bitfield received from the wire was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BitfieldError {
    #[error("bitfield has {got} bytes, expected {want} for {pieces} pieces")]
    WrongLength {
        got: usize,
        want: usize,
        pieces: u32,
    },
    #[error("bitfield has spare bits set past piece {pieces}")]
    SpareBits { pieces: u32 },
}

impl Bitfield {
    /// An empty bitfield for `len` pieces.
    pub fn new(len: u32) -> Self {
        Bitfield {
            bytes: vec![0; Self::byte_len(len)],
            len,
            ones: 0,
        }
    }

    /// A bitfield with every piece set.
    pub fn full(len: u32) -> Self {
        let mut b = Self::new(len);
        for i in 0..len {
            b.set(i);
        }
        b
    }

    /// Number of bytes a bitfield of `len` pieces takes on the wire.
    pub fn byte_len(len: u32) -> usize {
        (len as usize).div_ceil(8)
    }

    /// Parses a wire bitfield, checking its length and that no spare bit is set.
    pub fn from_wire(bytes: &[u8], len: u32) -> Result<Self, BitfieldError> {
        let want = Self::byte_len(len);
        if bytes.len() != want {
            return Err(BitfieldError::WrongLength {
                got: bytes.len(),
                want,
                pieces: len,
            });
        }
        // In usize: `want * 8` is 2^32 for the largest lengths and would wrap in u32.
        let spare = want * 8 - len as usize;
        if spare > 0 && bytes[want - 1] & ((1u8 << spare) - 1) != 0 {
            return Err(BitfieldError::SpareBits { pieces: len });
        }
        let ones = bytes.iter().map(|b| b.count_ones()).sum();
        Ok(Bitfield {
            bytes: bytes.to_vec(),
            len,
            ones,
        })
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many pieces are set.
    pub fn count(&self) -> u32 {
        self.ones
    }

    pub fn is_full(&self) -> bool {
        self.ones == self.len
    }

    /// Whether piece `i` is set; out-of-range indexes are never set.
    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.bytes[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
    }

    /// Sets piece `i`; returns false if it was already set or is out of range.
    pub fn set(&mut self, i: u32) -> bool {
        if i >= self.len || self.get(i) {
            return false;
        }
        self.bytes[(i / 8) as usize] |= 0x80 >> (i % 8);
        self.ones += 1;
        true
    }

    /// Clears piece `i`; returns false if it was not set.
    pub fn clear(&mut self, i: u32) -> bool {
        if !self.get(i) {
            return false;
        }
        self.bytes[(i / 8) as usize] &= !(0x80 >> (i % 8));
        self.ones -= 1;
        true
    }

    /// The wire form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Indexes of the set pieces, ascending.
    pub fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|&i| self.get(i))
    }

    /// Number of 64-piece words, for [`Bitfield::word`].
    pub fn word_count(&self) -> usize {
        self.bytes.len().div_ceil(8)
    }

    /// Pieces `64 * index ..` as one word, the lowest piece in the high bit (wire order), so that
    /// set operations and searches run 64 pieces at a time; words past the end are 0.
    pub fn word(&self, index: usize) -> u64 {
        let mut buf = [0u8; 8];
        if let Some(tail) = self.bytes.get(index.saturating_mul(8)..) {
            let n = tail.len().min(8);
            buf[..n].copy_from_slice(&tail[..n]);
        }
        u64::from_be_bytes(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_spare_bits() {
        let mut b = Bitfield::new(10);
        assert!(b.set(0));
        assert!(b.set(9));
        assert!(!b.set(9));
        assert!(!b.set(10));
        assert_eq!(b.as_bytes(), &[0x80, 0x40]);
        assert_eq!(Bitfield::from_wire(b.as_bytes(), 10).unwrap(), b);
        assert_eq!(
            Bitfield::from_wire(&[0x80, 0x60], 10),
            Err(BitfieldError::SpareBits { pieces: 10 })
        );
        assert!(matches!(
            Bitfield::from_wire(&[0x80], 10),
            Err(BitfieldError::WrongLength { .. })
        ));
        assert_eq!(b.count(), 2);
        assert!(b.clear(0));
        assert_eq!(b.ones().collect::<Vec<_>>(), vec![9]);
    }

    #[test]
    fn words_in_wire_order() {
        let mut b = Bitfield::new(70);
        b.set(0);
        b.set(63);
        b.set(64);
        b.set(69);
        assert_eq!(b.word_count(), 2);
        assert_eq!(b.word(0), (1 << 63) | 1);
        assert_eq!(b.word(1), (1 << 63) | (1 << 58));
        assert_eq!(b.word(2), 0);
    }
}
