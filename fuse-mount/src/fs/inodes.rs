//! The mount's inode table, built from metainfo alone so listing never waits on data.
//!
//! The root holds what downloads of every mounted torrent into one folder would create (each
//! torrent's single file, or its folder) plus the status folder [`STATUS_DIR`]. Torrents come
//! and go while mounted: adding one appends its nodes, removing one takes its entry out of the
//! root and forgets its nodes. Inode numbers are never reused, so a handle or a kernel cache
//! entry naming a removed torrent's inode finds nothing (ENOENT) rather than another file.

use std::collections::BTreeMap;
use std::ops::Range;

use rivulet_core::layout::Layout;
use rivulet_core::metainfo::Metainfo;

pub const ROOT: u64 = 1;
/// Folder at the mount root holding [`STATUS_FILE`]; left out of the root's listing.
pub const STATUS_DIR: &str = ".rivulet";
pub const STATUS_FILE: &str = "status.json";

/// Which mounted torrent a node belongs to; never reused within a mount.
pub type Slot = u64;

#[derive(Debug)]
pub enum Kind {
    /// Children by name, in name order (that is the `readdir` order).
    Dir(BTreeMap<String, u64>),
    /// Index into the torrent's `Metainfo::files`.
    File(usize),
    /// Index into `Metainfo::symlinks` (BEP 47): a link to a path inside the torrent.
    Symlink(usize),
    /// The status file, rendered at open.
    Status,
}

impl Kind {
    /// The torrent file index of a file node.
    pub fn file_index(&self) -> Option<usize> {
        match self {
            Kind::File(i) => Some(*i),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Node {
    pub parent: u64,
    pub kind: Kind,
    /// Pieces holding this node's bytes, sorted and merged; empty outside torrents.
    pub pieces: Vec<Range<u32>>,
    /// The torrent the node is part of; `None` for the root and the status folder.
    pub torrent: Option<Slot>,
}

/// All nodes; inode `n` is `nodes[n - 1]`, `None` once its torrent was removed.
#[derive(Debug)]
pub struct Inodes {
    nodes: Vec<Option<Node>>,
}

impl Inodes {
    /// The root with the status folder and nothing else.
    pub fn new() -> Self {
        let mut inodes = Inodes {
            nodes: vec![Some(Node {
                parent: ROOT,
                kind: Kind::Dir(BTreeMap::new()),
                pieces: Vec::new(),
                torrent: None,
            })],
        };
        let status = inodes.add(ROOT, STATUS_DIR, Kind::Dir(BTreeMap::new()), None);
        inodes.add(status, STATUS_FILE, Kind::Status, None);
        inodes
    }

    /// The name `meta` takes at the root: its own, or with a short info-hash suffix when that
    /// is taken (by another torrent or the status folder), before the extension of a file.
    pub fn free_name(&self, meta: &Metainfo) -> String {
        let name = top_name(meta);
        if self.lookup(ROOT, &name).is_none() {
            return name;
        }
        let short = &meta.info_hash.hex()[..8];
        match name.rfind('.').filter(|&dot| dot > 0 && !meta.multi_file) {
            Some(dot) => format!("{}-{short}{}", &name[..dot], &name[dot..]),
            None => format!("{name}-{short}"),
        }
    }

    /// Adds the tree of `meta` at the root under `name` (from [`Inodes::free_name`]); returns
    /// the inode of its top entry.
    pub fn add_torrent(&mut self, slot: Slot, meta: &Metainfo, name: &str) -> u64 {
        let layout = Layout::new(meta);
        let first = self.nodes.len() as u64 + 1;
        for (index, file) in meta.files.iter().enumerate() {
            let pieces = layout.pieces_for(layout.file_range(index));
            let mut dir = ROOT;
            for (depth, component) in file.path.iter().enumerate() {
                if dir != ROOT {
                    self.push_pieces(dir, &pieces);
                }
                let component = if depth == 0 { name } else { component };
                let last = depth + 1 == file.path.len();
                let existing = self.lookup(dir, component).filter(|&ino| ino >= first);
                dir = match existing {
                    // The metainfo refuses duplicate paths and file/folder clashes, so an
                    // existing child here is always a folder on the way down.
                    Some(existing) => existing,
                    None => {
                        let kind = if last {
                            Kind::File(index)
                        } else {
                            Kind::Dir(BTreeMap::new())
                        };
                        self.add(dir, component, kind, Some(slot))
                    }
                };
            }
            self.push_pieces(dir, &pieces);
        }
        for (index, link) in meta.symlinks.iter().enumerate() {
            // A link is always inside the torrent's folder: one at the top would be the
            // torrent itself.
            let Some((last, dirs)) = link.path.split_last().filter(|(_, d)| !d.is_empty()) else {
                continue;
            };
            let mut dir = ROOT;
            for (depth, component) in dirs.iter().enumerate() {
                let component = if depth == 0 { name } else { component };
                let existing = self.lookup(dir, component).filter(|&ino| ino >= first);
                dir = match existing {
                    Some(existing) => existing,
                    None => self.add(dir, component, Kind::Dir(BTreeMap::new()), Some(slot)),
                };
            }
            // The metainfo gives links and files unique paths, so the name is free.
            if self.lookup(dir, last).is_none() {
                self.add(dir, last, Kind::Symlink(index), Some(slot));
            }
        }
        for node in self.nodes[first as usize - 1..].iter_mut().flatten() {
            merge(&mut node.pieces);
        }
        self.lookup(ROOT, name).unwrap_or(ROOT)
    }

    /// Takes the torrent whose top entry is `top` out of the root and forgets its nodes.
    pub fn remove_torrent(&mut self, top: u64) {
        let Some(node) = self.get(top) else { return };
        let slot = node.torrent;
        if slot.is_none() {
            return;
        }
        if let Some(Some(Node {
            kind: Kind::Dir(children),
            ..
        })) = self.nodes.first_mut()
        {
            children.retain(|_, &mut ino| ino != top);
        }
        for node in self.nodes.iter_mut() {
            if node.as_ref().is_some_and(|n| n.torrent == slot) {
                *node = None;
            }
        }
    }

    pub fn get(&self, ino: u64) -> Option<&Node> {
        let i = usize::try_from(ino.checked_sub(1)?).ok()?;
        self.nodes.get(i)?.as_ref()
    }

    pub fn lookup(&self, parent: u64, name: &str) -> Option<u64> {
        match &self.get(parent)?.kind {
            Kind::Dir(children) => children.get(name).copied(),
            _ => None,
        }
    }

    /// Nodes in use.
    pub fn count(&self) -> u64 {
        self.nodes.iter().flatten().count() as u64
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

    fn add(&mut self, parent: u64, name: &str, kind: Kind, torrent: Option<Slot>) -> u64 {
        self.nodes.push(Some(Node {
            parent,
            kind,
            pieces: Vec::new(),
            torrent,
        }));
        let ino = self.nodes.len() as u64;
        if let Some(Some(Node {
            kind: Kind::Dir(children),
            ..
        })) = self.nodes.get_mut((parent - 1) as usize)
        {
            children.insert(name.to_owned(), ino);
        }
        ino
    }

    fn push_pieces(&mut self, ino: u64, pieces: &Range<u32>) {
        let Some(Some(node)) = self.nodes.get_mut((ino - 1) as usize) else {
            return;
        };
        if pieces.is_empty() {
            return;
        }
        // Files come in torrent order, so most pushes extend the last range; merge() tidies
        // the rest.
        match node.pieces.last_mut() {
            Some(last) if pieces.start <= last.end && pieces.end >= last.start => {
                last.start = last.start.min(pieces.start);
                last.end = last.end.max(pieces.end);
            }
            _ => node.pieces.push(pieces.clone()),
        }
    }
}

/// What a download of `meta` creates in its folder: the first component of its paths.
fn top_name(meta: &Metainfo) -> String {
    meta.files
        .first()
        .and_then(|f| f.path.first())
        .cloned()
        .unwrap_or_else(|| meta.name.clone())
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
    use rivulet_core::metainfo::{FileEntry, InfoHash, Version};

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
                    ..FileEntry::default()
                };
                offset += length;
                e
            })
            .collect();
        Metainfo {
            info_hash: InfoHash([0xab; 20]),
            info_hash_v2: None,
            version: Version::V1,
            name_original: None,
            symlinks: Vec::new(),
            missing_piece_layers: 0,
            url_list: Vec::new(),
            creation_date: None,
            name: files[0].path[0].clone(),
            piece_length: piece,
            piece_hashes: vec![[0; 20]; offset.div_ceil(piece) as usize],
            piece_layers: Default::default(),
            multi_file: files[0].path.len() > 1,
            files,
            total_length: offset,
            trackers: Vec::new(),
            private: false,
            comment: None,
            created_by: None,
            info_bytes: Default::default(),
        }
    }

    fn with(m: &Metainfo) -> (Inodes, u64) {
        let mut ino = Inodes::new();
        let name = ino.free_name(m);
        let top = ino.add_torrent(7, m, &name);
        (ino, top)
    }

    #[test]
    fn tree_links_and_pieces() {
        let m = meta(
            &[("t/a/x", 100), ("t/b/y", 0), ("t/a/z", 100), ("t/top", 10)],
            64,
        );
        let (ino, t) = with(&m);
        assert_eq!(ino.lookup(ROOT, "t"), Some(t));
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
        assert_eq!(ino.get(t).unwrap().pieces, vec![0..4]);
        assert_eq!(ino.get(y).unwrap().torrent, Some(7));
        let status = ino.lookup(ROOT, STATUS_DIR).unwrap();
        let file = ino.lookup(status, STATUS_FILE).unwrap();
        assert!(matches!(ino.get(file).unwrap().kind, Kind::Status));
        assert!(ino.get(status).unwrap().torrent.is_none());
        assert_eq!(format!("{STATUS_DIR}/{STATUS_FILE}"), crate::STATUS_PATH);
        assert!(ino.get(0).is_none());
        assert!(ino.get(ino.count() + 1).is_none());
        assert!(ino.lookup(x, "anything").is_none());
    }

    #[test]
    fn folder_pieces_merge_when_files_interleave() {
        let m = meta(&[("t/a/1", 64), ("t/b/2", 128), ("t/a/3", 64)], 64);
        let (ino, t) = with(&m);
        let a = ino.lookup(t, "a").unwrap();
        assert_eq!(ino.get(a).unwrap().pieces, vec![0..1, 3..4]);
        assert_eq!(ino.get(t).unwrap().pieces, vec![0..4]);
    }

    #[test]
    fn a_torrent_named_like_the_status_folder_gets_a_suffix() {
        let m = meta(&[(".rivulet", 10)], 64);
        let (ino, top) = with(&m);
        assert_eq!(ino.lookup(ROOT, ".rivulet-abababab"), Some(top));
        assert!(matches!(ino.get(top).unwrap().kind, Kind::File(0)));
        let status = ino.lookup(ROOT, STATUS_DIR).unwrap();
        assert!(ino.lookup(status, STATUS_FILE).is_some());
    }

    #[test]
    fn clashing_names_take_the_short_hash_before_the_extension() {
        let mut ino = Inodes::new();
        let film = meta(&[("film.mkv", 10)], 64);
        let first = ino.free_name(&film);
        ino.add_torrent(1, &film, &first);
        assert_eq!(ino.free_name(&film), "film-abababab.mkv");
        let folder = meta(&[("film.mkv/a", 10)], 64);
        assert_eq!(ino.free_name(&folder), "film.mkv-abababab");
    }

    #[test]
    fn a_removed_torrent_leaves_the_root_and_its_inodes_are_not_reused() {
        let mut ino = Inodes::new();
        let a = meta(&[("a/x", 10), ("a/y", 10)], 64);
        let b = meta(&[("b", 10)], 64);
        let top_a = ino.add_torrent(1, &a, "a");
        let x = ino.lookup(top_a, "x").unwrap();
        let top_b = ino.add_torrent(2, &b, "b");
        ino.remove_torrent(top_a);
        assert!(ino.lookup(ROOT, "a").is_none());
        assert!(ino.get(top_a).is_none() && ino.get(x).is_none());
        assert_eq!(ino.lookup(ROOT, "b"), Some(top_b));
        let again = ino.add_torrent(3, &a, "a");
        assert!(again > top_b, "inode numbers only grow");
        assert_eq!(
            ino.count(),
            3 + 1 + 3,
            "root, status folder and file, b, a again"
        );
    }

    #[test]
    fn symlinks_are_nodes_of_their_own_and_pad_files_are_absent() {
        let info = "d5:filesld6:lengthi3e4:pathl1:aeed4:attr1:p6:lengthi1e4:pathl3:padeed4:attr1:l4:pathl1:d1:le12:symlink pathl1:aeee4:name1:t12:piece lengthi4e6:pieces20:xxxxxxxxxxxxxxxxxxxxe";
        let m = Metainfo::from_bytes(format!("d4:info{info}e").as_bytes()).unwrap();
        let (ino, t) = with(&m);
        assert!(ino.lookup(t, "pad").is_none());
        let d = ino.lookup(t, "d").unwrap();
        let l = ino.lookup(d, "l").unwrap();
        assert!(matches!(ino.get(l).unwrap().kind, Kind::Symlink(0)));
    }
}
