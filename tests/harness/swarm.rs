//! The usual setup of an engine test: opentracker plus an aria2 seeder of one fixture.

use std::path::PathBuf;

use crate::aria2::{Aria2Seeder, SeederOptions};
use crate::fixture::Fixture;
use crate::tracker::{Announce, Tracker};
use crate::workdir::WorkDir;

pub struct Swarm {
    pub fixture: &'static Fixture,
    pub tracker: Tracker,
    pub seeder: Aria2Seeder,
}

impl Swarm {
    /// Starts the tracker and an aria2 seeder (announcing over HTTP) and waits until the
    /// tracker lists the seeder.
    pub fn start(work: &WorkDir, fixture: &'static Fixture, opts: SeederOptions) -> Swarm {
        let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
        let torrent = fixture.torrent(&tracker.http_url(), "seed", work.path());
        let seeder = Aria2Seeder::start(work.path(), fixture, &torrent, &tracker, opts);
        Swarm {
            fixture,
            tracker,
            seeder,
        }
    }

    /// A torrent of the fixture announcing to this swarm's tracker over `proto`.
    pub fn torrent(&self, work: &WorkDir, proto: Announce) -> PathBuf {
        self.fixture
            .torrent(&self.tracker.url(proto), proto.tag(), work.path())
    }
}
