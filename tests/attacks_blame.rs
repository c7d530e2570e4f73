//! Issue 14, "Fairness": strike poisoning. Four peers from four addresses each sent one bad
//! block of a piece and choked; the honest seeder that completed those pieces collected four
//! strikes, was banned, and the download stayed at 79/289. Now a piece that fails with
//! several senders blames nobody until a copy from one peer verifies; the blocks that differ
//! name the liars. Bound: the honest aria2 seeder is never banned, every liar is, and the
//! download completes exact.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fake_peer::{FakePeer, Misbehaviour};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr, own_loopback};
use rivulet_tests::rivulet::Download;
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

const LIARS: usize = 4;

fn ips(addrs: Vec<String>) -> Vec<IpAddr> {
    addrs
        .iter()
        .filter_map(|a| a.parse::<SocketAddr>().ok())
        .map(|a| a.ip())
        .collect()
}

#[test]
fn liars_sending_one_bad_block_each_are_banned_and_the_honest_seeder_never_is() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("attack-strike-poisoning");
    // Throttled so that the liars, which answer at once, get requests of their own.
    let swarm = Swarm::start(&work, fixture, SeederOptions::limited(4 << 20));
    let liars: Vec<FakePeer> = (0..LIARS)
        .map(|_| FakePeer::start(own_loopback(), fixture, Misbehaviour::CorruptOnceThenChoke))
        .collect();
    let torrent = swarm.torrent(&work, Announce::Http);
    let out = work.subdir("out");
    let mut dl = Download::new(&torrent, &out)
        .listen(free_addr(LOCALHOST))
        .events(&work.join("events.jsonl"));
    for l in &liars {
        dl = dl.peer(l.addr);
    }
    let started = Instant::now();
    let mut run = dl.spawn(work.path(), "download");
    run.wait_success(Duration::from_secs(120));
    let took = started.elapsed();
    assert_same_files(fixture, &out, "download beside four liars");
    let events = run.events();
    let banned = ips(events.addrs("peer_banned"));
    let served: Vec<u32> = liars.iter().map(|l| l.record().blocks_sent).collect();
    eprintln!(
        "download in {took:?}; liars sent {served:?} bad blocks; hash failures {:?}; banned {banned:?}",
        events.hash_failed()
    );
    assert!(
        !banned.contains(&swarm.seeder.addr.ip()),
        "the honest aria2 seeder {} was banned: {}",
        swarm.seeder.addr,
        events.tail(20)
    );
    // A piece that failed with one sender only costs it half a ban (a second such failure
    // bans); a piece with several senders is compared with a good copy, which names the liar.
    let sole_senders: Vec<String> = events
        .of("hash_failed")
        .filter_map(|e| match e["peers"].as_array().map(Vec::as_slice) {
            Some([only]) => only.as_str().map(str::to_owned),
            _ => None,
        })
        .collect();
    for (l, sent) in liars.iter().zip(&served) {
        assert!(*sent >= 1, "liar {} was never asked for a block", l.addr);
        let alone = sole_senders.contains(&l.addr.to_string());
        assert!(
            banned.contains(&l.addr.ip()) || alone,
            "liar {} sent a bad block, was not banned and was not the sole sender of its \
             failed piece (banned: {banned:?})\n{}",
            l.addr,
            events.tail(30)
        );
    }
    assert!(
        banned.len() + sole_senders.len() >= LIARS,
        "each liar banned or struck: banned {banned:?}, sole senders {sole_senders:?}"
    );
}
