//! The mount's inode table, built once from the metainfo alone so listing never waits on data.
//!
//! The root holds what a download into the mount point would create (the single file, or the
//! torrent's folder) plus the hidden status folder [`STATUS_DIR`].

use std::collections::BTreeMap;
use std::ops::Range;

use rivulet_core::layout::Layout;
use rivulet_core::metainfo::Metainfo;

pub const ROOT: u64 = 1;
/// Hidden folder at the mount root holding [`STATUS_FILE`].
pub const STATUS_DIR: &str = ".rivulet";
pub const STATUS_FILE: &str = "status.json";

#[derive(Debug)]
pub enum Kind {
    /// Children by name, in name order (that is the `readdir` order).
    Dir(BTreeMap<String, u64>),
    /// Index into `Metainfo::files`.
    File(usize),
    /// The status file, rendered at open.
    Status,
}

#[derive(Debug)]
pub struct Node {
    pub parent: u64,
    pub kind: Kind,
    /// Pieces holding this node's bytes, sorted and merged; empty for the status nodes.
    pub pieces: Vec<Range<u32>>,
    /// Part of the status folder rather than of the torrent.
    pub status: bool,
}

/// All nodes; inode `n` is `nodes[n - 1]`.
#[derive(Debug)]
pub struct Inodes {
    nodes: Vec<Node>,
}

impl Inodes {
    pub fn new(meta: &Metainfo) -> Self {
        let layout = Layout::new(meta);
        let mut nodes = vec![Node {
            parent: ROOT,
            kind: Kind::Dir(BTreeMap::new()),
            pieces: Vec::new(),
            status: false,
        }];
        for (index, file) in meta.files.iter().enumerate() {
            let pieces = layout.pieces_for(layout.file_range(index));
            let mut dir = ROOT;
            for (depth, component) in file.path.iter().enumerate() {
                push_pieces(&mut nodes[(dir - 1) as usize], &pieces);
                let last = depth + 1 == file.path.len();
                dir = match child_of(&nodes, dir, component) {
                    // The metainfo refuses duplicate paths and file/folder clashes, so an
                    // existing child here is always a folder on the way down.
                    Some(existing) => existing,
                    None => {
                        let kind = if last {
                            Kind::File(index)
                        } else {
                            Kind::Dir(BTreeMap::new())
                        };
                        add(&mut nodes, dir, component, kind, false)
                    }
                };
            }
            push_pieces(&mut nodes[(dir - 1) as usize], &pieces);
        }
        for node in &mut nodes {
            merge(&mut node.pieces);
        }
        if child_of(&nodes, ROOT, STATUS_DIR).is_none() {
            let status = add(
                &mut nodes,
                ROOT,
                STATUS_DIR,
                Kind::Dir(BTreeMap::new()),
                true,
            );
            add(&mut nodes, status, STATUS_FILE, Kind::Status, true);
        } else {
            tracing::warn!(
                "the torrent itself is named {STATUS_DIR}; the mount has no status file"
            );
        }
        Inodes { nodes }
    }

    pub fn get(&self, ino: u64) -> Option<&Node> {
        let i = usize::try_from(ino.checked_sub(1)?).ok()?;
        self.nodes.get(i)
    }

    pub fn lookup(&self, parent: u64, name: &str) -> Option<u64> {
        child_of(&self.nodes, parent, name)
    }

    pub fn count(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// Number of folders directly inside `ino` (for its link count).
    pub fn subdirs(&self, ino: u64) -> u32 {
        match self.get(ino).map(|n| &n.kind) {
            Some(Kind::Dir(children)) => children
                .values()
                .filter(|&&c| matches!(self.get(c).map(|n| &n.kind), Some(Kind::Dir(_))))
                .count() as u32,
            _ => 0,
        }
    }
}

fn child_of(nodes: &[Node], parent: u64, name: &str) -> Option<u64> {
    match &nodes.get((parent - 1) as usize)?.kind {
        Kind::Dir(children) => children.get(name).copied(),
        _ => None,
    }
}

fn add(nodes: &mut Vec<Node>, parent: u64, name: &str, kind: Kind, status: bool) -> u64 {
    nodes.push(Node {
        parent,
        kind,
        pieces: Vec::new(),
        status,
    });
    let ino = nodes.len() as u64;
    if let Kind::Dir(children) = &mut nodes[(parent - 1) as usize].kind {
        children.insert(name.to_owned(), ino);
    }
    ino
}

fn push_pieces(node: &mut Node, pieces: &Range<u32>) {
    if pieces.is_empty() {
        return;
    }
    // Files come in torrent order, so most pushes extend the last range; merge() tidies the rest.
    match node.pieces.last_mut() {
        Some(last) if pieces.start <= last.end && pieces.end >= last.start => {
            last.start = last.start.min(pieces.start);
            last.end = last.end.max(pieces.end);
        }
        _ => node.pieces.push(pieces.clone()),
    }
}

fn merge(ranges: &mut Vec<Range<u32>>) {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u32>> = Vec::with_capacity(ranges.len());
    for r in ranges.drain(..) {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    *ranges = out;
}

#[cfg(test)]
mod tests {
    use rivulet_core::metainfo::{FileEntry, InfoHash};

    use super::*;

    fn meta(files: &[(&str, u64)], piece: u64) -> Metainfo {
        let mut offset = 0;
        let files: Vec<FileEntry> = files
            .iter()
            .map(|&(p, length)| {
                let e = FileEntry {
                    path: p.split('/').map(str::to_owned).collect(),
                    length,
                    offset,
                };
                offset += length;
                e
            })
            .collect();
        Metainfo {
            info_hash: InfoHash([0; 20]),
            name: files[0].path[0].clone(),
            piece_length: piece,
            piece_hashes: vec![[0; 20]; offset.div_ceil(piece) as usize],
            files,
            total_length: offset,
            trackers: Vec::new(),
            private: false,
            multi_file: true,
            comment: None,
            created_by: None,
            info_bytes: Default::default(),
        }
    }

    #[test]
    fn tree_links_and_pieces() {
        let m = meta(
            &[("t/a/x", 100), ("t/b/y", 0), ("t/a/z", 100), ("t/top", 10)],
            64,
        );
        let ino = Inodes::new(&m);
        let t = ino.lookup(ROOT, "t").unwrap();
        let a = ino.lookup(t, "a").unwrap();
        let x = ino.lookup(a, "x").unwrap();
        let z = ino.lookup(a, "z").unwrap();
        let y = ino.lookup(ino.lookup(t, "b").unwrap(), "y").unwrap();
        assert!(matches!(ino.get(x).unwrap().kind, Kind::File(0)));
        assert!(matches!(ino.get(z).unwrap().kind, Kind::File(2)));
        assert_eq!(ino.get(x).unwrap().parent, a);
        assert_eq!(ino.subdirs(t), 2);
        assert_eq!(ino.subdirs(ROOT), 2, "torrent folder and the status folder");
        // x = bytes 0..100 (pieces 0..2), z = 100..200 (1..4), y is empty.
        assert_eq!(ino.get(x).unwrap().pieces, vec![0..2]);
        assert_eq!(ino.get(z).unwrap().pieces, vec![1..4]);
        assert_eq!(ino.get(a).unwrap().pieces, vec![0..4]);
        assert!(ino.get(y).unwrap().pieces.is_empty());
        assert_eq!(ino.get(ROOT).unwrap().pieces, vec![0..4]);
        let status = ino.lookup(ROOT, STATUS_DIR).unwrap();
        let file = ino.lookup(status, STATUS_FILE).unwrap();
        assert!(matches!(ino.get(file).unwrap().kind, Kind::Status));
        assert!(ino.get(status).unwrap().status && ino.get(file).unwrap().status);
        assert!(!ino.get(ROOT).unwrap().status && !ino.get(y).unwrap().status);
        assert_eq!(format!("{STATUS_DIR}/{STATUS_FILE}"), crate::STATUS_PATH);
        assert!(ino.get(0).is_none());
        assert!(ino.get(ino.count() + 1).is_none());
        assert!(ino.lookup(x, "anything").is_none());
    }

    #[test]
    fn folder_pieces_merge_when_files_interleave() {
        let m = meta(&[("t/a/1", 64), ("t/b/2", 128), ("t/a/3", 64)], 64);
        let ino = Inodes::new(&m);
        let t = ino.lookup(ROOT, "t").unwrap();
        let a = ino.lookup(t, "a").unwrap();
        assert_eq!(ino.get(a).unwrap().pieces, vec![0..1, 3..4]);
        assert_eq!(ino.get(t).unwrap().pieces, vec![0..4]);
    }

    #[test]
    fn a_torrent_named_like_the_status_folder_wins() {
        let m = meta(&[(".rivulet", 10)], 64);
        let ino = Inodes::new(&m);
        let f = ino.lookup(ROOT, STATUS_DIR).unwrap();
        assert!(matches!(ino.get(f).unwrap().kind, Kind::File(0)));
        assert_eq!(ino.count(), 2);
    }
}
