//! The results table: printed, and appended to `benches/RESULTS.md` with the date, the command
//! and a note on the machine, so that runs stay comparable over time.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

/// One leecher's run of one scenario.
pub struct Row {
    pub scenario: String,
    pub leecher: &'static str,
    /// Launch to exit.
    pub wall: f64,
    /// First connection to a seeder to exit.
    pub transfer: f64,
    /// What the seeders' caps allow for the whole payload, ignoring round trips.
    pub bound: f64,
    pub size: u64,
    /// Bytes the proxies delivered beyond the payload: protocol overhead plus duplicates.
    pub excess: u64,
    /// Bytes the client itself reports as wasted, if it does.
    pub wasted: Option<u64>,
    /// Seconds the seeders' links idled while present, summed (see `proxy::State::idle_ns`).
    pub idle: f64,
}

const HEAD: &str = "| scenario | leecher | wall s | transfer s | caps allow s | transfer MB/s \
                    | delivered beyond payload MiB | client-reported waste MiB | links idle s |\n\
                    |---|---|---:|---:|---:|---:|---:|---:|---:|\n";

const LEGEND: &str = "# Benchmark results\n\n\
Swarm tables (`benches/swarm`): wall = launch to exit; transfer = the leecher's first \
connection to a seeder (at a proxy) to exit; caps allow = payload / seeders' upload caps \
(leaving seeders dropping out), round trips ignored; delivered beyond payload = bytes the \
proxies delivered to the leecher minus the payload (protocol overhead, well under 1 %, plus \
duplicates); client-reported waste = rivulet's `complete.downloaded` minus the payload, \
libtorrent's redundant + failed bytes, n/a where the client does not say; links idle = \
seconds, summed over the seeders, during which a present seeder's link had nothing to send \
after the leecher's first connection (capacity the leecher left unused).\n";

pub fn table(rows: &[Row]) -> String {
    let mut t = String::from(HEAD);
    for r in rows {
        let _ = writeln!(t, "{}", line(r));
    }
    t
}

/// One row of the table.
pub fn line(r: &Row) -> String {
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let wasted = r
        .wasted
        .map(|w| format!("{:.2}", mib(w)))
        .unwrap_or_else(|| "n/a".into());
    format!(
        "| {} | {} | {:.2} | {:.2} | {:.1} | {:.1} | {:.2} | {wasted} | {:.2} |",
        r.scenario,
        r.leecher,
        r.wall,
        r.transfer,
        r.bound,
        r.size as f64 / r.transfer.max(1e-9) / 1e6,
        mib(r.excess),
        r.idle,
    )
}

/// Appends `table` under a dated heading naming `command` to `results` (started with a
/// legend if new).
pub fn append(results: &Path, command: &str, table: &str) {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let section = format!(
        "\n## swarm, {date}\n\n`{command}`\n\nMachine: {cores} cores shared with other builds: \
         compare clients within a run (ratios), not absolute times across runs.\n\n{table}"
    );
    let legend = if results.exists() { "" } else { LEGEND };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(results)
        .unwrap_or_else(|e| panic!("open {}: {e}", results.display()));
    f.write_all(format!("{legend}{section}").as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", results.display()));
}
