//! `rivulet info`: what a .torrent holds, from the metainfo alone.

use std::fmt::Write;

use indicatif::HumanBytes;
use rivulet_core::metainfo::Metainfo;

pub fn render(m: &Metainfo) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "name:       {}", m.name);
    let _ = writeln!(o, "info-hash:  {}", m.info_hash);
    let _ = writeln!(
        o,
        "size:       {} ({} bytes)",
        HumanBytes(m.total_length),
        m.total_length
    );
    let _ = writeln!(
        o,
        "pieces:     {} x {} bytes ({})",
        m.piece_count(),
        m.piece_length,
        HumanBytes(m.piece_length)
    );
    if m.private {
        let _ = writeln!(o, "private:    yes");
    }
    if let Some(c) = &m.comment {
        let _ = writeln!(o, "comment:    {c}");
    }
    let _ = writeln!(o, "trackers:");
    if m.trackers.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for (i, tier) in m.trackers.iter().enumerate() {
        for url in tier {
            let _ = writeln!(o, "  tier {i}: {url}");
        }
    }
    let _ = writeln!(o, "files:      {}", m.files.len());
    let mut printed: Vec<&str> = Vec::new();
    for f in &m.files {
        // Print each folder once, the first time a file below it appears.
        let dirs = &f.path[..f.path.len() - 1];
        let common = printed
            .iter()
            .zip(dirs)
            .take_while(|(a, b)| **a == b.as_str())
            .count();
        printed.truncate(common);
        for d in &dirs[common..] {
            let _ = writeln!(o, "  {}{d}/", "  ".repeat(printed.len()));
            printed.push(d);
        }
        let name = f.path.last().map(String::as_str).unwrap_or("");
        let _ = writeln!(o, "  {}{name}  {}", "  ".repeat(printed.len()), f.length);
    }
    o
}
