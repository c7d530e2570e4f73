//! Progress as seen from inside the mount: the `user.rivulet.progress` attribute and the
//! `.rivulet/status.json` document.

use std::fmt;
use std::ops::Range;

use rivulet_core::bitfield::Bitfield;
use rivulet_core::metainfo::Metainfo;
use rivulet_core::torrent::Stats;
use serde::Serialize;

/// Extended attribute on every torrent file and folder.
pub const PROGRESS_XATTR: &str = "user.rivulet.progress";

/// Verified pieces out of those holding a file's (or folder's) bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub have: u32,
    pub total: u32,
}

impl Progress {
    pub fn of(have: &Bitfield, pieces: &[Range<u32>]) -> Self {
        let mut p = Progress { have: 0, total: 0 };
        for r in pieces {
            p.total += r.len() as u32;
            p.have += r.clone().filter(|&i| have.get(i)).count() as u32;
        }
        p
    }
}

impl fmt::Display for Progress {
    /// `37.5% 12/32 pieces`; a file with no pieces (zero length) is complete.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = if self.total == 0 {
            100.0
        } else {
            100.0 * f64::from(self.have) / f64::from(self.total)
        };
        write!(f, "{pct:.1}% {}/{} pieces", self.have, self.total)
    }
}

#[derive(Serialize)]
struct StatusDoc<'a> {
    name: &'a str,
    info_hash: String,
    #[serde(flatten)]
    stats: Stats,
}

/// The status document: the torrent's name and info-hash plus the engine's stats, as pretty
/// JSON ending in a newline.
pub fn status_json(meta: &Metainfo, stats: Stats) -> Vec<u8> {
    let doc = StatusDoc {
        name: &meta.name,
        info_hash: meta.info_hash.hex(),
        stats,
    };
    // Serialising plain structs and maps of strings and numbers cannot fail.
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_only_the_pieces_under_the_node() {
        let mut have = Bitfield::new(40);
        for i in [0, 5, 6, 7, 30] {
            have.set(i);
        }
        let p = Progress::of(&have, &[4..8, 10..14]);
        assert_eq!(p, Progress { have: 3, total: 8 });
        assert_eq!(p.to_string(), "37.5% 3/8 pieces");
        assert_eq!(Progress::of(&have, &[]).to_string(), "100.0% 0/0 pieces");
        assert_eq!(
            Progress::of(&Bitfield::full(3), &[0..2, 2..3]).to_string(),
            "100.0% 3/3 pieces"
        );
    }
}
