//! What the plugin tests share: config files, one download run to the end, the `started` event,
//! how ordered a run's verified pieces were, and `rivulet plugins` output.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::time::Duration;

use rivulet_tests::events::Events;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::rivulet::{self, Download};
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

/// Longest a download of a test fixture from a loopback swarm may take.
pub const BOUND: Duration = Duration::from_secs(180);

/// Writes `work/<name>` with `lines` plus a `state_dir` inside the work dir, so that runs keep
/// their resume files to themselves.
pub fn config(work: &WorkDir, name: &str, lines: &str) -> PathBuf {
    let path = work.join(name);
    let state = work.join("state");
    let text = format!("{lines}\nstate_dir = {:?}\n", state.display().to_string());
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// A config for the memory storage with a cache of `cache_mib` MiB.
pub fn memory_config(work: &WorkDir, cache_mib: u64) -> PathBuf {
    config(
        work,
        "memory.toml",
        &format!("storage = \"memory\"\nmemory_cache_mib = {cache_mib}"),
    )
}

/// A TOML list of paths.
pub fn toml_paths(paths: &[&Path]) -> String {
    let items: Vec<String> = paths
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    format!("[{}]", items.join(", "))
}

/// Downloads with `setup` applied to the command line into `work/<tag>`; asserts a successful
/// exit and a correct copy; returns the run's events.
pub fn fetch(
    work: &WorkDir,
    fixture: &Fixture,
    torrent: &Path,
    tag: &str,
    setup: impl FnOnce(Download) -> Download,
) -> Events {
    let out = work.subdir(tag);
    let events = work.join(&format!("{tag}.jsonl"));
    let download = Download::new(torrent, &out)
        .listen(free_addr(LOCALHOST))
        .events(&events);
    let mut run = setup(download).spawn(work.path(), tag);
    run.wait_success(BOUND);
    assert_same_files(fixture, &out, tag);
    run.events()
}

/// The `picker` and `storage` of the `started` event.
pub fn started(events: &Events) -> (String, String) {
    let line = events
        .of("started")
        .next()
        .unwrap_or_else(|| panic!("no `started` event:\n{}", events.tail(10)));
    let field = |k: &str| line[k].as_str().unwrap_or_default().to_string();
    (field("picker"), field("storage"))
}

/// Pieces in the order `piece_verified` reported them.
pub fn verified_order(events: &Events) -> Vec<u32> {
    events
        .of("piece_verified")
        .filter_map(|l| l["piece"].as_u64())
        .map(|p| p as u32)
        .collect()
}

/// The share of piece pairs verified in decreasing index order: 0 for a strictly increasing
/// order, 1 for a strictly decreasing one, about 0.5 for a random one. Unlike counting descents
/// it also sees through an order that is increasing in long runs but wraps around.
pub fn inversions(order: &[u32]) -> f64 {
    let n = order.len();
    assert!(
        n >= 2,
        "too few verified pieces to judge an order: {order:?}"
    );
    let inverted: usize = (0..n)
        .map(|i| order[i + 1..].iter().filter(|&&q| q < order[i]).count())
        .sum();
    inverted as f64 / (n * (n - 1) / 2) as f64
}

/// The share of the pieces in the longest increasing subsequence of `order`: 1 for a strictly
/// increasing order, about 2/sqrt(n) for a random one. Unlike counting inverted pairs it charges a
/// piece verified far out of turn (an allowed-fast piece from the file's end) once, not once per
/// piece it jumped.
pub fn in_order_share(order: impl ExactSizeIterator<Item = u32>) -> f64 {
    let n = order.len();
    // Patience sorting: tails[k] is the least last element of an increasing run of length k+1.
    let mut tails: Vec<u32> = Vec::new();
    for piece in order {
        let at = tails.partition_point(|&t| t < piece);
        if at == tails.len() {
            tails.push(piece);
        } else {
            tails[at] = piece;
        }
    }
    tails.len() as f64 / n.max(1) as f64
}

/// Every piece exactly once.
pub fn assert_each_piece_once(order: &[u32], fixture: &Fixture, who: &str) {
    let mut sorted = order.to_vec();
    sorted.sort_unstable();
    let all: Vec<u32> = (0..fixture.meta.piece_count()).collect();
    assert_eq!(sorted, all, "{who}: not every piece verified exactly once");
}

/// One line of `rivulet plugins`: kind, name, version, source, status (the rest of the line).
#[derive(Debug)]
pub struct Listed {
    pub kind: String,
    pub name: String,
    pub source: String,
    pub status: String,
}

/// Runs `rivulet plugins --config CONFIG`, asserting exit 0; returns its lines and stderr.
pub fn list_plugins(work: &WorkDir, config: &Path) -> (Vec<Listed>, String) {
    let run = rivulet::run(
        work.path(),
        "plugins",
        &["plugins".into(), "--config".into(), config.into()],
        Duration::from_secs(30),
    );
    assert!(
        run.status.success(),
        "rivulet plugins failed ({}): {}",
        run.status,
        run.stderr
    );
    let lines = run
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            // "{kind:8} {name:16} {version:8} {source:40} {status}"; names and sources hold no
            // spaces in these tests, an empty version shows as a run of spaces.
            let kind = l.get(..8).unwrap_or(l).trim().to_string();
            let rest: Vec<&str> = l.get(9..).unwrap_or("").split_whitespace().collect();
            let (name, tail) = rest.split_first().expect("a plugin line names the plugin");
            let (source, status) = match tail {
                [version, source, status @ ..] if !version.contains('/') => (source, status),
                [source, status @ ..] => (source, status),
                [] => panic!("short plugins line: {l}"),
            };
            Listed {
                kind,
                name: name.to_string(),
                source: source.to_string(),
                status: status.join(" "),
            }
        })
        .collect();
    (lines, run.stderr)
}
