//! Reads the `--events` JSON-lines log of a rivulet run (see core/src/events.rs), also while the
//! run is still writing it: a last line without its newline is not read yet.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

pub struct Events {
    pub lines: Vec<Value>,
}

impl Events {
    /// Reasons of the `peer_dropped` events of connections from any of `ips`.
    pub fn drop_reasons(&self, ips: &[std::net::IpAddr]) -> Vec<String> {
        self.of("peer_dropped")
            .filter(|l| {
                l["addr"]
                    .as_str()
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                    .is_some_and(|a| ips.contains(&a.ip()))
            })
            .filter_map(|l| l["reason"].as_str().map(str::to_string))
            .collect()
    }

    /// Every complete line of `path` (none if it does not exist yet). Panics on a line that is
    /// not a JSON object with an `event` field: the file is the engine's contract.
    pub fn read(path: &Path) -> Events {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        let lines = complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {l}", path.display()));
                assert!(
                    v["event"].is_string() && v["ms"].is_u64(),
                    "{}: event line without `event` and `ms`: {l}",
                    path.display()
                );
                v
            })
            .collect();
        Events { lines }
    }

    /// The lines of one kind, e.g. "piece_verified".
    pub fn of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.lines.iter().filter(move |l| l["event"] == kind)
    }

    pub fn has(&self, kind: &str) -> bool {
        self.of(kind).next().is_some()
    }

    /// Pieces reported by `piece_verified`.
    pub fn verified(&self) -> BTreeSet<u32> {
        self.pieces_of("piece_verified")
    }

    /// How many `piece_verified` lines there are (a piece reported twice counts twice).
    pub fn verified_count(&self) -> usize {
        self.of("piece_verified").count()
    }

    /// Pieces reported by `hash_failed`.
    pub fn hash_failed(&self) -> BTreeSet<u32> {
        self.pieces_of("hash_failed")
    }

    /// The `pieces` of the `resumed` line, if there is one.
    pub fn resumed(&self) -> Option<u64> {
        self.of("resumed").next().and_then(|l| l["pieces"].as_u64())
    }

    /// The `addr` fields of the lines of one kind (peer_connected, peer_dropped, peer_banned, ...).
    pub fn addrs(&self, kind: &str) -> Vec<String> {
        self.of(kind)
            .filter_map(|l| l["addr"].as_str().map(str::to_string))
            .collect()
    }

    fn pieces_of(&self, kind: &str) -> BTreeSet<u32> {
        self.of(kind)
            .filter_map(|l| l["piece"].as_u64())
            .map(|p| p as u32)
            .collect()
    }

    /// The last `n` lines, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let skip = self.lines.len().saturating_sub(n);
        self.lines[skip..]
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
