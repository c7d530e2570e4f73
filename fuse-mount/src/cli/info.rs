//! `rivulet info`: what a .torrent holds, from the metainfo alone.
//!
//! Names, comments and URLs come from whoever made the torrent: their control characters (an
//! escape sequence can retitle or clear the terminal) and direction overrides (which make a name
//! read as something else) are printed as `\u{..}` escapes.
//!
//! Names are shown as they will be on disk; one that had to be made safe or unique is marked
//! with the torrent's own spelling, so nothing is renamed silently.

use std::fmt::Write;

use indicatif::HumanBytes;
use rivulet_core::metainfo::{Metainfo, Version};

pub fn render(m: &Metainfo) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "name:       {}{}", shown(&m.name), was(&m.name_original));
    let _ = writeln!(o, "info-hash:  {}", m.info_hash);
    if let Some(v2) = m.info_hash_v2_hex() {
        let _ = writeln!(o, "info-hash v2: {v2}");
    }
    let version = match m.version {
        Version::V1 => "BitTorrent v1",
        Version::V2 => "BitTorrent v2 only",
        Version::Hybrid => "hybrid (v1 and v2)",
    };
    let _ = writeln!(o, "version:    {version}");
    if m.missing_piece_layers > 0 {
        let _ = writeln!(
            o,
            "            ({} piece layers missing: computed from complete files, else fetched from peers)",
            m.missing_piece_layers
        );
    }
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
        let _ = writeln!(o, "comment:    {}", shown(c));
    }
    let _ = writeln!(o, "trackers:");
    if m.trackers.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for (i, tier) in m.trackers.iter().enumerate() {
        for url in tier {
            let _ = writeln!(o, "  tier {i}: {}", shown(url));
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
            let _ = writeln!(o, "  {}{}/", "  ".repeat(printed.len()), shown(d));
            printed.push(d);
        }
        let name = f.path.last().map(String::as_str).unwrap_or("");
        let indent = "  ".repeat(printed.len());
        let exec = if f.attr.executable {
            " (executable)"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "  {indent}{}  {}{exec}{}",
            shown(name),
            f.length,
            was(&f.original)
        );
    }
    if !m.symlinks.is_empty() {
        let _ = writeln!(o, "symlinks:   {}", m.symlinks.len());
        for l in &m.symlinks {
            let _ = writeln!(
                o,
                "  {} -> {}{}",
                shown(&l.path.join("/")),
                shown(&l.relative_target().to_string_lossy()),
                was(&l.original)
            );
        }
    }
    for url in &m.url_list {
        let _ = writeln!(o, "web seed:   {}", shown(url));
    }
    o
}

/// The marker of a name that differs from the torrent's spelling.
fn was(original: &Option<String>) -> String {
    match original {
        Some(orig) => format!("  (renamed; the torrent says \"{}\")", shown(orig)),
        None => String::new(),
    }
}

/// Unicode's Bidi_Control characters: marks, embeddings, overrides and isolates.
const BIDI_CONTROLS: [char; 12] = [
    '\u{61c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}',
    '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
];

/// `s` with control characters and bidirectional overrides as `\u{..}` escapes.
fn shown(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || BIDI_CONTROLS.contains(&c) {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_direction_overrides_are_escaped() {
        assert_eq!(shown("a\u{1b}[2Jb\u{7}"), "a\\u{1b}[2Jb\\u{7}");
        assert_eq!(shown("evil\u{202e}fdp.exe"), "evil\\u{202e}fdp.exe");
        assert_eq!(shown("café – ok"), "café – ok");
    }
}
