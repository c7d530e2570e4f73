//! The `info` dictionary exactly as it was bencoded: what the info-hash is taken over, what we
//! serve to peers fetching metadata (BEP 9), and what a `.torrent` is rebuilt from when the
//! metadata came from a magnet link.

use std::fmt;
use std::sync::Arc;

use super::merkle;

/// The raw bytes of a torrent's `info` dictionary, shared (a torrent's metadata can be a few
/// megabytes and every metadata request reads it).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct InfoBytes(pub Arc<[u8]>);

impl std::ops::Deref for InfoBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for InfoBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoBytes({} bytes)", self.0.len())
    }
}

/// A `.torrent` file around `info`: `announce` (the first tracker) and `announce-list` (one
/// tier per tracker, in order) when there are trackers, then the info dictionary verbatim.
pub fn torrent_file(info: &[u8], trackers: &[String]) -> Vec<u8> {
    torrent_file_with_layers(info, trackers, &[])
}

/// [`torrent_file`] with the `piece layers` of a v2 torrent: each file's root and its layer.
pub fn torrent_file_with_layers(
    info: &[u8],
    trackers: &[String],
    layers: &[(merkle::Hash, Vec<merkle::Hash>)],
) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(s.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(s);
    }
    let mut out =
        Vec::with_capacity(info.len() + 64 + trackers.iter().map(|t| t.len() + 8).sum::<usize>());
    out.push(b'd');
    if let Some(first) = trackers.first() {
        string(&mut out, b"announce");
        string(&mut out, first.as_bytes());
        string(&mut out, b"announce-list");
        out.push(b'l');
        for t in trackers {
            out.push(b'l');
            string(&mut out, t.as_bytes());
            out.push(b'e');
        }
        out.push(b'e');
    }
    string(&mut out, b"info");
    out.extend_from_slice(info);
    if !layers.is_empty() {
        // Bencoded keys are sorted: "piece layers" after "info", the roots in byte order.
        let mut sorted: Vec<&(merkle::Hash, Vec<merkle::Hash>)> = layers.iter().collect();
        sorted.sort_by_key(|(root, _)| *root);
        string(&mut out, b"piece layers");
        out.push(b'd');
        for (root, layer) in sorted {
            string(&mut out, root);
            string(&mut out, layer.as_flattened());
        }
        out.push(b'e');
    }
    out.push(b'e');
    out
}
