//! No module of core imports one that imports it back: between core's top-level modules, and
//! between sibling files of one folder, the `use` graph has no cycle. Read from the source text:
//! `crate::a::…` names top-level module `a`; `super::b…` in `dir/x.rs` names sibling `dir/b`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Identifiers following `prefix` in `text` (`crate::` → `torrent`, …), ignoring comments.
fn names_after<'a>(text: &'a str, prefix: &str) -> BTreeSet<&'a str> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            let after = &rest[i + prefix.len()..];
            let end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if end > 0 {
                out.insert(&after[..end]);
            }
            rest = &after[end..];
        }
    }
    out
}

/// A cycle in `graph`, if any, as the list of nodes on it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            return Some(path[i..].to_vec());
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let top = |p: &Path| -> String {
        let rel = p.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let mut top_graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut sibling_graphs: BTreeMap<PathBuf, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let me = top(f);
        if me == "lib" {
            continue;
        }
        for m in names_after(&text, "crate::") {
            let module = src.join(m).exists() || src.join(format!("{m}.rs")).exists();
            if m != me && module {
                top_graph
                    .entry(me.clone())
                    .or_default()
                    .insert(m.to_string());
            }
        }
        let dir = f.parent().unwrap().to_path_buf();
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        if name == "mod" || dir == src {
            continue;
        }
        for m in names_after(&text, "super::") {
            let sibling = dir.join(format!("{m}.rs")).exists() || dir.join(m).is_dir();
            if sibling && m != name {
                sibling_graphs
                    .entry(dir.clone())
                    .or_default()
                    .entry(name.clone())
                    .or_default()
                    .insert(m.to_string());
            }
        }
    }
    assert!(
        top_graph.len() > 5,
        "the scan found the modules: {top_graph:?}"
    );
    if let Some(c) = find_cycle(&top_graph) {
        panic!("top-level modules import each other in a cycle: {c:?}");
    }
    for (dir, g) in &sibling_graphs {
        if let Some(c) = find_cycle(g) {
            panic!(
                "files in {} import each other in a cycle: {c:?}",
                dir.display()
            );
        }
    }
}
