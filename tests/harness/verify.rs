//! Checks a client's output directory against a fixture, file by file, by SHA-1.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha1::{Digest, Sha1};

use crate::fixture::Fixture;
use crate::torrent::hex;

/// SHA-1 of a file, hex.
pub fn sha1_file(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Problems with the copy of `fixture` under `out`, one line each; empty when it is exact.
pub fn differences(fixture: &Fixture, out: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for f in &fixture.files {
        let path = out.join(&f.rel);
        let len = match path.metadata() {
            Ok(m) => m.len(),
            Err(e) => {
                problems.push(format!("{}: {e}", f.rel.display()));
                continue;
            }
        };
        if len != f.len {
            problems.push(format!("{}: {len} bytes, want {}", f.rel.display(), f.len));
            continue;
        }
        match sha1_file(&path) {
            Ok(h) if h == f.sha1_hex => {}
            Ok(h) => problems.push(format!(
                "{}: sha1 {h}, want {}",
                f.rel.display(),
                f.sha1_hex
            )),
            Err(e) => problems.push(format!("{}: {e}", f.rel.display())),
        }
    }
    problems
}

/// Panics listing every file of `fixture` that is missing or wrong under `out`.
pub fn assert_same_files(fixture: &Fixture, out: &Path, who: &str) {
    let problems = differences(fixture, out);
    assert!(
        problems.is_empty(),
        "{who}: copy of {} in {} is wrong:\n{}",
        fixture.id,
        out.display(),
        problems.join("\n")
    );
}
