//! The test harness: real trackers and peers on loopback (opentracker, aria2, qBittorrent,
//! libtorrent, rtorrent), deterministic fixtures, a fault-injecting fake peer, and a driver for
//! the `rivulet` binary.
//!
//! Everything a test starts is killed when its handle is dropped, and every wait has a timeout
//! that fails with the relevant log tail. Run the tests through `tests/run-all.sh`, which puts
//! them in a network namespace that holds only `lo`.

pub mod aria2;
pub mod attacker;
pub mod beside_fake;
pub mod chromium;
pub mod dht;
pub mod events;
pub mod fake_peer;
pub mod fixture;
pub mod hostile_tracker;
pub mod libtorrent;
pub mod make_torrent;
pub mod metadata_liar;
pub mod mount;
pub mod netns;
pub mod plugin_libs;
pub mod ports;
pub mod proc_stats;
pub mod process;
pub mod qbittorrent;
pub mod raw_peer;
pub mod resume_check;
pub mod rivulet;
pub mod rtorrent;
pub mod serve;
pub mod session;
pub mod swarm;
pub mod torrent;
pub mod tracker;
pub mod tracker_client;
pub mod udp_announce;
pub mod verify;
pub mod wire;
pub mod workdir;
