//! The common shape of a bad-peer test: `rivulet download` of the multi fixture from a
//! throttled honest aria2 seeder and, given with `--peer`, a [`FakePeer`] that misbehaves. The
//! download must complete with correct files; the [`Outcome`] tells what happened to the liar.

use std::net::SocketAddr;
use std::time::Duration;

use crate::aria2::SeederOptions;
use crate::events::Events;
use crate::fake_peer::{FakePeer, Misbehaviour, Record};
use crate::fixture::Fixture;
use crate::ports::{LOCALHOST, free_addr, own_loopback};
use crate::proc_stats::Sampler;
use crate::rivulet::Download;
use crate::swarm::Swarm;
use crate::tracker::Announce;
use crate::verify::assert_same_files;
use crate::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(180);

pub struct Outcome {
    pub events: Events,
    pub record: Record,
    pub fake: SocketAddr,
    /// The highest resident memory of the rivulet process during the run.
    pub peak_rss_mib: u64,
}

/// Downloads the multi fixture from a throttled aria2 seeder (so that the fake peer, which
/// answers at once, gets its share of requests) and the fake peer given with `--peer`.
pub fn download_next_to(test: &str, behaviour: Misbehaviour) -> Outcome {
    let fixture = Fixture::multi();
    let work = WorkDir::new(test);
    let swarm = Swarm::start(&work, fixture, SeederOptions::limited(4 << 20));
    let fake = FakePeer::start(own_loopback(), fixture, behaviour);
    let torrent = swarm.torrent(&work, Announce::Http);
    let out = work.subdir("out");
    let mut run = Download::new(&torrent, &out)
        .listen(free_addr(LOCALHOST))
        .peer(fake.addr)
        .events(&work.join("events.jsonl"))
        .spawn(work.path(), "download");
    let sampler = Sampler::start(run.proc.pid());
    run.wait_success(BOUND);
    assert_same_files(fixture, &out, &format!("download next to {behaviour:?}"));
    let record = fake.record();
    assert!(
        record.handshakes >= 1,
        "rivulet never handshook with the --peer {}: {record:?}",
        fake.addr
    );
    Outcome {
        events: run.events(),
        record,
        fake: fake.addr,
        peak_rss_mib: sampler.peak_rss_mib(),
    }
}

impl Outcome {
    /// Whether rivulet banned or dropped the fake peer (by event or by closing on it).
    pub fn dropped(&self) -> bool {
        let addr = self.fake.to_string();
        self.events.addrs("peer_banned").contains(&addr)
            || self.events.addrs("peer_dropped").contains(&addr)
            || self.record.closed_by_client >= 1
    }

    pub fn assert_dropped(&self) {
        assert!(
            self.dropped(),
            "the fake peer {} was never dropped: {:?}\n{}",
            self.fake,
            self.record,
            self.events.tail(20)
        );
    }

    /// The reasons of the `peer_dropped` events naming the fake peer.
    pub fn drop_reasons(&self) -> Vec<String> {
        let addr = self.fake.to_string();
        self.events
            .of("peer_dropped")
            .filter(|l| l["addr"] == addr.as_str())
            .filter_map(|l| l["reason"].as_str().map(str::to_string))
            .collect()
    }
}
