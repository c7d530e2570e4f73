//! The modules of `core/src/plugin` import one another one way only: no module imports one that
//! (directly or through others) imports it back. Edges are read from `use` declarations and
//! `crate::plugin::…`/`super::…` paths in the code (comments and test modules at the end of a
//! file left out); a path through a re-export of `plugin/mod.rs` or `abi.rs` counts as an edge to that
//! parent, so reaching a sibling through its parent's re-exports is caught too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name ("plugin::abi::picker") for every source file under `core/src/plugin`.
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.join("plugin")];
    out.insert(
        "plugin".to_string(),
        std::fs::read_to_string(root.join("plugin/mod.rs")).unwrap(),
    );
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let rel = path.strip_prefix(&root).unwrap().with_extension("");
            let name = rel.to_string_lossy().replace('/', "::");
            if name != "plugin::mod" {
                out.insert(name, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    out
}

/// Every path starting with `crate::plugin` or `super` in `source` (before its test module),
/// with `use a::{b, c::d}` groups expanded.
fn paths(source: &str) -> Vec<String> {
    let source = source.split("#[cfg(test)]").next().unwrap_or(source);
    // Comments (doc links among them) import nothing.
    let code: String = source
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 16)].iter().collect();
        let boundary = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        if boundary && (rest.starts_with("crate::plugin") || rest.starts_with("super::")) {
            let start = i;
            let mut depth = 0;
            while i < bytes.len() {
                match bytes[i] {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    c if depth == 0
                        && !(c.is_alphanumeric() || c == '_' || c == ':' || c == '*') =>
                    {
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
            let text: String = bytes[start..i]
                .iter()
                .filter(|c| !c.is_whitespace())
                .collect();
            expand(&text, &mut out);
        } else {
            i += 1;
        }
    }
    out
}

/// `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(text: &str, out: &mut Vec<String>) {
    let Some(open) = text.find('{') else {
        out.push(text.trim_end_matches("::").to_string());
        return;
    };
    let prefix = &text[..open];
    let inner = &text[open + 1..text.rfind('}').unwrap_or(text.len())];
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand(&format!("{prefix}{}", &inner[start..i]), out);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < inner.len() {
        expand(&format!("{prefix}{}", &inner[start..]), out);
    }
}

/// The module a path in module `from` names: the longest known module prefix.
fn target(from: &str, path: &str, known: &BTreeMap<String, String>) -> Option<String> {
    let mut segments: Vec<String> = Vec::new();
    let mut parts = path.split("::").peekable();
    if parts.peek() == Some(&"crate") {
        parts.next();
    } else {
        segments = from.split("::").map(str::to_string).collect();
        while parts.peek() == Some(&"super") {
            parts.next();
            segments.pop();
        }
    }
    segments.extend(parts.map(str::to_string));
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|m| known.contains_key(m))
}

#[test]
fn plugin_modules_never_import_one_that_imports_them_back() {
    let known = modules();
    assert!(known.len() > 15, "found only {:?}", known.keys());
    let mut edges: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (module, source) in &known {
        let from = edges.entry(module).or_default();
        for path in paths(source) {
            if let Some(to) = target(module, &path, &known)
                && &to != module
            {
                from.insert(to);
            }
        }
    }
    // A cycle exists iff a depth-first search meets a module still on its stack.
    fn visit<'a>(
        m: &'a str,
        edges: &'a BTreeMap<&str, BTreeSet<String>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = stack.iter().position(|&s| s == m) {
            panic!("import cycle: {} -> {m}", stack[at..].join(" -> "));
        }
        stack.push(m);
        for next in edges.get(m).into_iter().flatten() {
            visit(next, edges, stack, done);
        }
        stack.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        visit(m, &edges, &mut Vec::new(), &mut done);
    }
    // The check sees edges at all: the loader imports the ABI, the registry the loader.
    assert!(edges["plugin::loader"].contains("plugin::abi::descriptor"));
    assert!(edges["plugin::registry"].contains("plugin::loader"));
}
