//! Scenario files (`benches/scenarios/*.toml`): the data set and the seeders, each with its
//! client, upload rate and round-trip time, and optionally when it leaves: at a share of the
//! time the whole swarm's caps need for the data (the same moment for every leecher).
//!
//! ```toml
//! name = "8 seeders, 20-120 ms, 1-8 MB/s"
//! fixture = "big"            # gib (1 GiB), big (256 MiB), single (64 MiB), multi (18 MiB), single_small
//! [[seeder]]
//! client = "aria2"           # aria2, libtorrent or rivulet
//! upload_mb_s = 2.0          # MB/s (10^6 bytes)
//! rtt_ms = 40
//! leaves_at_percent = 50     # optional: % of size / (sum of all upload rates)
//! count = 1                  # optional: this many identical seeders
//! ```
//!
//! A streaming scenario adds a `[stream]` table (see `stream::StreamSpec`): then the mounts
//! (rivulet, btfs) read from the swarm instead of the leechers downloading it.

use std::path::Path;
use std::time::Duration;

use rivulet_tests::fixture::Fixture;
use serde::Deserialize;

use crate::proxy::Link;
use crate::stream::StreamSpec;

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum SeederClient {
    Aria2,
    Libtorrent,
    Rivulet,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SeederSpec {
    pub client: SeederClient,
    pub upload_mb_s: f64,
    pub rtt_ms: u64,
    #[serde(default)]
    pub leaves_at_percent: Option<u64>,
    #[serde(default = "one")]
    pub count: usize,
}

fn one() -> usize {
    1
}

impl SeederSpec {
    /// The path to this seeder; `full_swarm` is the time all caps together need for the data.
    pub fn link(&self, full_swarm: Duration) -> Link {
        Link {
            rtt: Duration::from_millis(self.rtt_ms),
            rate: self.rate() as u64,
            leave_after: self.leaves_at(full_swarm),
        }
    }

    /// Bytes per second.
    pub fn rate(&self) -> f64 {
        self.upload_mb_s * 1e6
    }

    pub fn leaves_at(&self, full_swarm: Duration) -> Option<Duration> {
        self.leaves_at_percent
            .map(|p| full_swarm.mul_f64(p as f64 / 100.0))
    }
}

#[derive(Debug, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub fixture: String,
    #[serde(rename = "seeder")]
    pub seeders: Vec<SeederSpec>,
    #[serde(default)]
    pub stream: Option<StreamSpec>,
}

impl Scenario {
    pub fn load(path: &Path) -> Scenario {
        config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .unwrap_or_else(|e| panic!("scenario {}: {e}", path.display()))
    }

    pub fn fixture(&self) -> &'static Fixture {
        match self.fixture.as_str() {
            "big" => Fixture::big(),
            "gib" => Fixture::gib(),
            "single" => Fixture::single(),
            "multi" => Fixture::multi(),
            "single_small" => Fixture::single_small(),
            other => panic!("scenario {}: unknown fixture {other:?}", self.name),
        }
    }

    /// One spec per seeder (`count` expanded).
    pub fn each_seeder(&self) -> Vec<SeederSpec> {
        self.seeders
            .iter()
            .flat_map(|s| std::iter::repeat_n(s.clone(), s.count))
            .collect()
    }
}
