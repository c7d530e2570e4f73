//! Progress as seen from inside the mount: the `user.rivulet.progress` attribute and the
//! `.rivulet/status.json` document (every torrent of the mount).

use std::fmt;
use std::ops::Range;

use rivulet_core::bitfield::Bitfield;
use rivulet_core::metainfo::Metainfo;
use rivulet_core::torrent::Stats;
use serde::Serialize;
use serde_json::{Map, Value};

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
struct TorrentDoc<'a> {
    name: &'a str,
    info_hash: String,
    /// Where the torrent sits at the mount root (its name, unless that clashed).
    path: &'a str,
    #[serde(flatten)]
    stats: Stats,
}

/// One mounted torrent as the status document shows it.
pub struct TorrentStatus<'a> {
    pub meta: &'a Metainfo,
    pub path: &'a str,
    pub stats: Stats,
}

/// The status document as pretty JSON ending in a newline: every torrent (name, info-hash,
/// place in the mount, the engine's stats) under `torrents`, then the `sections` front ends
/// add (a watch folder's skipped files). A mount of one torrent also has that torrent's fields
/// at the top level, as before there were several, so scripts reading them keep working.
pub fn status_json(torrents: Vec<TorrentStatus<'_>>, sections: Vec<(&str, Value)>) -> Vec<u8> {
    let docs: Vec<Value> = torrents
        .into_iter()
        .map(|t| {
            serde_json::to_value(TorrentDoc {
                name: &t.meta.name,
                info_hash: t.meta.info_hash.hex(),
                path: t.path,
                stats: t.stats,
            })
            .unwrap_or_default()
        })
        .collect();
    let mut doc = match docs.as_slice() {
        [only] => only.as_object().cloned().unwrap_or_default(),
        _ => Map::new(),
    };
    doc.insert("torrents".into(), Value::Array(docs));
    for (name, section) in sections {
        doc.insert(name.into(), section);
    }
    // Serialising plain maps of strings and numbers cannot fail.
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
