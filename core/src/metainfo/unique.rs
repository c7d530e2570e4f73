//! Gives every file of a torrent a place of its own on disk.
//!
//! Two files with one path, or a file whose path is also a folder of another file, would fight
//! over one place; as libtorrent does, the later file is renamed `name.N.ext`. The number of
//! names tried is bounded (libtorrent's default limit, 1000), so a torrent of a million copies
//! of one name is refused rather than costing a million squared comparisons.

use std::collections::HashSet;

/// Names tried in vain, over all files, before the torrent is refused.
pub const MAX_COLLISIONS: usize = 1000;

/// Too many files share names.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("more than {MAX_COLLISIONS} file names collide")]
pub struct TooManyDuplicates;

/// Renames, in place, each path that repeats an earlier one or names a folder. Returns the
/// indices of the renamed paths.
pub fn make_unique(paths: &mut [Vec<String>]) -> Result<Vec<usize>, TooManyDuplicates> {
    let mut dirs = HashSet::new();
    for p in paths.iter() {
        for i in 1..p.len() {
            dirs.insert(p[..i].join("/"));
        }
    }
    let mut taken: HashSet<String> = HashSet::new();
    let mut collisions = 0;
    let mut renamed = Vec::new();
    for (index, p) in paths.iter_mut().enumerate() {
        let full = p.join("/");
        if !dirs.contains(&full) && taken.insert(full) {
            continue;
        }
        let last = p.last().cloned().unwrap_or_default();
        let (stem, ext) = match last.rfind('.') {
            Some(dot) if dot > 0 => last.split_at(dot),
            _ => (last.as_str(), ""),
        };
        for n in 1.. {
            collisions += 1;
            if collisions > MAX_COLLISIONS {
                return Err(TooManyDuplicates);
            }
            *p.last_mut().expect("paths are never empty") = format!("{stem}.{n}{ext}");
            let full = p.join("/");
            if !dirs.contains(&full) && taken.insert(full) {
                break;
            }
        }
        renamed.push(index);
    }
    Ok(renamed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(p: &[&str]) -> Vec<Vec<String>> {
        p.iter()
            .map(|s| s.split('/').map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn duplicates_and_file_folder_clashes_are_renamed() {
        let mut p = paths(&["t/a.txt", "t/a.txt", "t/a.1.txt", "t/d", "t/d/x", "t/a.txt"]);
        assert_eq!(make_unique(&mut p).unwrap(), vec![1, 2, 3, 5]);
        assert_eq!(
            p,
            paths(&[
                "t/a.txt",
                "t/a.1.txt",
                "t/a.1.1.txt",
                "t/d.1",
                "t/d/x",
                "t/a.2.txt"
            ])
        );
    }

    #[test]
    fn thousands_of_one_name_are_refused() {
        let mut p = paths(&["t/x"; 200]);
        assert_eq!(make_unique(&mut p), Err(TooManyDuplicates));
    }
}
