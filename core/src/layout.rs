//! Maps the torrent's concatenated byte space onto pieces and files.
//!
//! Every storage backend sees only (file, offset) spans: a piece that crosses many files is split
//! here, once, so no backend can get the arithmetic wrong.

use std::ops::Range;

use crate::metainfo::Metainfo;

/// A contiguous run of bytes inside one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileSpan {
    pub file: usize,
    /// Offset inside the file.
    pub offset: u64,
    pub len: u64,
    /// Offset of this span's first byte within the range that was mapped.
    pub range_offset: u64,
}

/// Piece and file geometry of one torrent.
#[derive(Clone, Debug)]
pub struct Layout {
    pub piece_length: u64,
    pub total_length: u64,
    /// (offset, length) of each file in torrent order.
    files: Vec<(u64, u64)>,
}

impl Layout {
    pub fn new(meta: &Metainfo) -> Self {
        Layout {
            piece_length: meta.piece_length,
            total_length: meta.total_length,
            files: meta.files.iter().map(|f| (f.offset, f.length)).collect(),
        }
    }

    pub fn piece_count(&self) -> u32 {
        self.total_length.div_ceil(self.piece_length) as u32
    }

    /// The torrent-global byte range of piece `index`.
    pub fn piece_range(&self, index: u32) -> Range<u64> {
        let start = (index as u64 * self.piece_length).min(self.total_length);
        start..(start + self.piece_length).min(self.total_length)
    }

    /// The torrent-global byte range of file `file`.
    pub fn file_range(&self, file: usize) -> Range<u64> {
        let (o, l) = self.files[file];
        o..o + l
    }

    /// Pieces touched by the torrent-global `range` (empty for an empty range).
    pub fn pieces_for(&self, range: Range<u64>) -> Range<u32> {
        let end = range.end.min(self.total_length);
        if range.start >= end {
            return 0..0;
        }
        (range.start / self.piece_length) as u32..end.div_ceil(self.piece_length) as u32
    }

    /// Splits the torrent-global `range` into per-file spans, skipping empty files.
    pub fn spans(&self, range: Range<u64>) -> Vec<FileSpan> {
        let end = range.end.min(self.total_length);
        let mut out = Vec::new();
        if range.start >= end {
            return out;
        }
        // First file whose end is past range.start.
        let first = self.files.partition_point(|&(o, l)| o + l <= range.start);
        for (file, &(o, l)) in self.files.iter().enumerate().skip(first) {
            if o >= end {
                break;
            }
            let s = range.start.max(o);
            let e = end.min(o + l);
            if s < e {
                out.push(FileSpan {
                    file,
                    offset: s - o,
                    len: e - s,
                    range_offset: s - range.start,
                });
            }
        }
        out
    }

    /// The parts of the torrent-global `range` that no file covers (BEP 47 pad files, BEP 52
    /// alignment), relative to `range.start`: zeros by definition, never fetched or stored.
    pub fn padding(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let len = range.end.min(self.total_length).saturating_sub(range.start);
        let mut gaps = Vec::new();
        let mut at = 0;
        for s in self.spans(range) {
            if s.range_offset > at {
                gaps.push(at..s.range_offset);
            }
            at = s.range_offset + s.len;
        }
        if at < len {
            gaps.push(at..len);
        }
        gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(files: &[u64], piece: u64) -> Layout {
        let mut off = 0;
        let files = files
            .iter()
            .map(|&l| {
                let f = (off, l);
                off += l;
                f
            })
            .collect();
        Layout {
            piece_length: piece,
            total_length: off,
            files,
        }
    }

    #[test]
    fn piece_crossing_files_and_empty_file() {
        let l = layout(&[1000, 0, 5000, 3], 4096);
        assert_eq!(l.piece_count(), 2);
        let s = l.spans(l.piece_range(1));
        assert_eq!(
            s,
            vec![
                FileSpan {
                    file: 2,
                    offset: 3096,
                    len: 1904,
                    range_offset: 0
                },
                FileSpan {
                    file: 3,
                    offset: 0,
                    len: 3,
                    range_offset: 1904
                },
            ]
        );
        let s = l.spans(0..4096);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[1],
            FileSpan {
                file: 2,
                offset: 0,
                len: 3096,
                range_offset: 1000
            }
        );
        assert_eq!(l.pieces_for(4095..4097), 0..2);
        assert_eq!(l.pieces_for(10..10), 0..0);
        assert_eq!(l.piece_range(1), 4096..6003);
        assert!(l.padding(0..4096).is_empty());
    }

    #[test]
    fn padding_is_what_no_file_covers() {
        // a: 0..1000, pad 1000..4096, b: 4096..5000.
        let l = Layout {
            piece_length: 4096,
            total_length: 5000,
            files: vec![(0, 1000), (4096, 904)],
        };
        assert_eq!(l.padding(l.piece_range(0)), vec![1000..4096]);
        assert!(l.padding(l.piece_range(1)).is_empty());
        assert_eq!(l.padding(500..4500), vec![500..3596]);
    }
}
