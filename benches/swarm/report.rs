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
}

const HEAD: &str = "| scenario | leecher | wall s | transfer s | caps allow s | transfer MB/s \
                    | delivered beyond payload MiB | client-reported waste MiB |\n\
                    |---|---|---:|---:|---:|---:|---:|---:|\n";

pub fn table(rows: &[Row]) -> String {
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let mut t = String::from(HEAD);
    for r in rows {
        let wasted = r
            .wasted
            .map(|w| format!("{:.2}", mib(w)))
            .unwrap_or_else(|| "n/a".into());
        let _ = writeln!(
            t,
            "| {} | {} | {:.2} | {:.2} | {:.1} | {:.1} | {:.2} | {wasted} |",
            r.scenario,
            r.leecher,
            r.wall,
            r.transfer,
            r.bound,
            r.size as f64 / r.transfer.max(1e-9) / 1e6,
            mib(r.excess),
        );
    }
    t
}

/// Appends `table` under a dated heading naming `command` to `results`.
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
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(results)
        .unwrap_or_else(|e| panic!("open {}: {e}", results.display()));
    f.write_all(section.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", results.display()));
}
