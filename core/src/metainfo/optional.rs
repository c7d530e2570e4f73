//! The optional fields outside the info dictionary: trackers, web seeds, comment, creator,
//! date.
//!
//! None of them changes what the torrent's data is, so one of the wrong type is ignored with a
//! warning instead of refusing the torrent (parse-torrent and libtorrent load torrents whose
//! `announce-list` is an empty string). Tracker URLs are trimmed: some encoders leave
//! whitespace around them, which no tracker would answer to.

use std::collections::HashSet;

use super::value::Value;

/// The optional top-level fields of a torrent.
#[derive(Default)]
pub(super) struct Optional {
    pub trackers: Vec<Vec<String>>,
    pub url_list: Vec<String>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ignored(field: &str) {
    tracing::warn!("ignoring the torrent's {field:?}: not of the type it should be");
}

/// A string field, or `None` (with a warning) if it is something else.
fn string(top: Value<'_>, field: &str) -> Option<String> {
    let v = top.get(field)?;
    let s = v.bytes().map(text);
    if s.is_none() {
        ignored(field);
    }
    s
}

pub(super) fn read(top: Value<'_>) -> Optional {
    let creation_date = top.get("creation date").and_then(|v| {
        let d = v.int();
        if d.is_none() {
            ignored("creation date");
        }
        d
    });
    Optional {
        trackers: tiers(top),
        url_list: url_list(top),
        comment: string(top, "comment"),
        created_by: string(top, "created by"),
        creation_date,
    }
}

/// BEP 12: `announce-list` wins when present and not empty; otherwise `announce` alone.
fn tiers(top: Value<'_>) -> Vec<Vec<String>> {
    let mut seen = HashSet::new();
    let mut out: Vec<Vec<String>> = Vec::new();
    if let Some(list) = top.get("announce-list") {
        match list.list() {
            Some(tiers) => {
                for tier in tiers {
                    // A tier written as a bare string is read as a tier of one.
                    let urls: Vec<&[u8]> = match (tier.list(), tier.bytes()) {
                        (Some(l), _) => l.filter_map(|u| u.bytes()).collect(),
                        (None, Some(u)) => vec![u],
                        (None, None) => Vec::new(),
                    };
                    let t: Vec<String> = urls
                        .into_iter()
                        .map(|u| text(u).trim().to_string())
                        .filter(|u| !u.is_empty() && seen.insert(u.clone()))
                        .collect();
                    if !t.is_empty() {
                        out.push(t);
                    }
                }
            }
            None => ignored("announce-list"),
        }
    }
    if out.is_empty()
        && let Some(a) = string(top, "announce")
    {
        let a = a.trim();
        if !a.is_empty() {
            out.push(vec![a.to_string()]);
        }
    }
    out
}

/// BEP 19 web seeds: one URL or a list of them.
fn url_list(top: Value<'_>) -> Vec<String> {
    let Some(v) = top.get("url-list") else {
        return Vec::new();
    };
    let urls: Vec<&[u8]> = match (v.bytes(), v.list()) {
        (Some(u), _) => vec![u],
        (None, Some(l)) => l.filter_map(|u| u.bytes()).collect(),
        (None, None) => {
            ignored("url-list");
            Vec::new()
        }
    };
    let mut seen = HashSet::new();
    urls.into_iter()
        .map(|u| text(u).trim().to_string())
        .filter(|u| !u.is_empty() && seen.insert(u.clone()))
        .collect()
}
