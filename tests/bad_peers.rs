//! Misbehaving peers next to an honest aria2 seeder: whatever the fake peer does (corrupt
//! blocks, wrong sizes, unrequested blocks, a 4 GiB length prefix, a cut-off block, silence),
//! the download completes with correct files within its bound, and the liars are dropped.

use rivulet_tests::beside_fake::download_next_to;
use rivulet_tests::fake_peer::Misbehaviour;

#[test]
fn corrupt_blocks_fail_hash_and_the_liar_is_banned() {
    let o = download_next_to("bad-peer-corrupt", Misbehaviour::CorruptBlocks);
    let failed = o.events.hash_failed();
    assert!(
        !failed.is_empty(),
        "the fake peer served {} pieces with corrupt blocks but no hash_failed event: {:?}",
        o.record.pieces_served.len(),
        o.record
    );
    assert!(
        failed.is_subset(&o.record.pieces_served),
        "hash_failed {failed:?} names pieces the liar never touched ({:?})",
        o.record.pieces_served
    );
    let fake = o.fake.to_string();
    assert!(
        o.events.of("hash_failed").any(|l| l["peers"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p == fake.as_str()))),
        "no hash_failed event names the fake peer {fake}"
    );
    o.assert_dropped();
}

#[test]
fn wrong_block_size_is_not_accepted() {
    let o = download_next_to("bad-peer-wrong-size", Misbehaviour::WrongBlockSize);
    assert!(
        o.events.hash_failed().is_empty(),
        "a half-length block was written as if whole"
    );
    o.assert_dropped();
}

#[test]
fn unrequested_blocks_are_discarded() {
    let o = download_next_to("bad-peer-unrequested", Misbehaviour::UnrequestedBlocks);
    assert!(
        o.record.blocks_sent > 0,
        "rivulet never asked the fake peer, so it never pushed a zero block"
    );
    assert!(
        o.events.hash_failed().is_empty(),
        "unrequested zero blocks were written: hash_failed {:?}",
        o.events.hash_failed()
    );
}

#[test]
fn huge_length_prefix_drops_the_peer() {
    let o = download_next_to("bad-peer-huge-length", Misbehaviour::HugeLengthPrefix);
    o.assert_dropped();
}

#[test]
fn disconnect_mid_block_is_survived() {
    let o = download_next_to("bad-peer-disconnect", Misbehaviour::DisconnectMidBlock);
    assert!(
        !o.record.requests.is_empty(),
        "rivulet never asked the fake peer for anything"
    );
}

#[test]
fn silent_peer_does_not_stall_the_download() {
    let o = download_next_to("bad-peer-silent", Misbehaviour::Silence);
    assert!(
        !o.record.requests.is_empty(),
        "rivulet never asked the silent peer, so its requests were never timed out"
    );
}
