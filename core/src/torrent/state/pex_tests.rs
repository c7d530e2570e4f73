//! Peer exchange (BEP 11) in the torrent core: lists in, candidates and lists out.

use std::net::SocketAddr;

use super::pex::{FIRST_OUT, INTERVAL_OUT, MAX_NEW_IN, MIN_INTERVAL_IN};
use super::tests::{Remote, connect_with, deliver, send, torrent};
use super::*;
use crate::torrent::PeerSource;
use crate::torrent::effects::Effect;
use crate::wire::extension::{HANDSHAKE_ID, OUR_UT_PEX};
use crate::wire::{ExtHandshake, PexMsg, PexPeer};

/// The id the test peers want ut_pex sent under.
const THEIR_PEX: u8 = 9;

fn private(s: &mut TorrentState) {
    let mut m = (*s.meta).clone();
    m.private = true;
    s.meta = Arc::new(m);
}

fn connect(s: &mut TorrentState, n: u8) -> Remote {
    connect_with(s, n, None, false)
}

/// `p`'s extension handshake: it speaks ut_pex and listens on `port` if given.
fn hello(s: &mut TorrentState, p: &Remote, port: Option<u16>) {
    let h = ExtHandshake {
        ut_pex: Some(THEIR_PEX),
        listen_port: port,
        ..ExtHandshake::default()
    };
    let m = Message::Extended {
        id: HANDSHAKE_ID,
        payload: h.encode(),
    };
    send(s, p, m).0.unwrap();
}

fn list(added: &[SocketAddr]) -> Vec<u8> {
    PexMsg {
        added: added
            .iter()
            .map(|&addr| PexPeer { addr, flags: 0 })
            .collect(),
        dropped: vec![],
    }
    .encode()
}

/// The addresses a PEX message from `p` at `now` handed to the swarm.
fn receive(s: &mut TorrentState, p: &Remote, payload: &[u8], now: Instant) -> Vec<SocketAddr> {
    let mut fx = Effects::default();
    s.on_pex(p.key, payload, now, &mut fx);
    fx.list
        .iter()
        .filter_map(|e| match e {
            Effect::Found(PeerSource::Pex, a) => Some(a.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The ut_pex lists `p` was sent.
fn lists(p: &Remote) -> Vec<PexMsg> {
    p.sent()
        .into_iter()
        .filter_map(|m| match m {
            Message::Extended {
                id: THEIR_PEX,
                payload,
            } => Some(PexMsg::decode(&payload).unwrap()),
            _ => None,
        })
        .collect()
}

fn our_handshake(s: &mut TorrentState, p: &Remote) -> ExtHandshake {
    let mut fx = Effects::default();
    s.greet_extensions(p.key, 7000, &mut fx);
    deliver(fx);
    let sent = p.sent();
    let Some(Message::Extended { payload, .. }) = sent.last() else {
        panic!("no handshake in {sent:?}");
    };
    ExtHandshake::decode(payload).unwrap()
}

#[test]
fn we_advertise_ut_pex_and_our_port_except_for_a_private_torrent() {
    let mut s = torrent(4, Bitfield::new(4));
    let p = connect(&mut s, 1);
    let h = our_handshake(&mut s, &p);
    assert_eq!(h.ut_pex, Some(OUR_UT_PEX));
    assert_eq!(h.listen_port, Some(7000));
    private(&mut s);
    assert_eq!(our_handshake(&mut s, &p).ut_pex, None);
}

#[test]
fn listed_peers_become_candidates_once_per_interval_and_bounded() {
    let mut s = torrent(4, Bitfield::new(4));
    let a = connect(&mut s, 1);
    let b = connect(&mut s, 2);
    s.swarm.banned.insert("10.9.9.9".parse().unwrap());
    s.swarm.self_addrs.insert("10.8.8.8:1".parse().unwrap());
    let fresh: SocketAddr = "10.1.1.1:6881".parse().unwrap();
    let skipped: Vec<SocketAddr> = vec![
        a.addr,                        // the sender itself
        b.addr,                        // connected already
        "10.9.9.9:5".parse().unwrap(), // banned
        "10.8.8.8:1".parse().unwrap(), // ourselves
        "10.1.1.2:0".parse().unwrap(), // no port
    ];
    let mut added = skipped.clone();
    added.push(fresh);
    let t0 = Instant::now();
    assert_eq!(receive(&mut s, &a, &list(&added), t0), vec![fresh]);

    let many: Vec<SocketAddr> = (0..150u32)
        .map(|i| SocketAddr::from(([11, 0, (i >> 8) as u8, i as u8], 6881)))
        .collect();
    let early = t0 + MIN_INTERVAL_IN - Duration::from_secs(1);
    assert!(
        receive(&mut s, &a, &list(&many), early).is_empty(),
        "a second list within {MIN_INTERVAL_IN:?} is ignored"
    );
    let got = receive(&mut s, &a, &list(&many), early + Duration::from_secs(2));
    assert_eq!(
        got.len(),
        MAX_NEW_IN,
        "at most {MAX_NEW_IN} new per message"
    );
    // Each peer has its own interval.
    assert_eq!(
        receive(&mut s, &b, &list(&many[100..]), early).len(),
        MAX_NEW_IN
    );
}

#[test]
fn a_malformed_list_is_ignored_and_the_peer_kept() {
    let mut s = torrent(4, Bitfield::new(4));
    let a = connect(&mut s, 1);
    for bad in [&b"d5:added7:1234567e"[..], b"i3e", b"l", &[b'l'; 40_000]] {
        let m = Message::Extended {
            id: OUR_UT_PEX,
            payload: bad.to_vec(),
        };
        send(&mut s, &a, m).0.unwrap();
        s.swarm.peers.get_mut(&a.key).unwrap().ext.pex = Default::default();
    }
    assert!(s.swarm.peers.contains_key(&a.key));
    assert!(s.swarm.known.is_empty());
}

#[test]
fn a_private_torrent_takes_and_sends_no_lists() {
    let mut s = torrent(4, Bitfield::new(4));
    private(&mut s);
    let a = connect(&mut s, 1);
    let _b = connect(&mut s, 2);
    hello(&mut s, &a, None);
    assert_eq!(s.swarm.peers[&a.key].ext.ut_pex, None);
    let fresh: SocketAddr = "10.1.1.1:6881".parse().unwrap();
    assert!(receive(&mut s, &a, &list(&[fresh]), Instant::now()).is_empty());
    let mut fx = Effects::default();
    s.pex_round(Instant::now() + FIRST_OUT + INTERVAL_OUT, &mut fx);
    deliver(fx);
    assert!(lists(&a).is_empty());
}

#[test]
fn our_lists_name_the_other_peers_listen_addresses_then_changes() {
    let mut s = torrent(4, Bitfield::new(4));
    let a = connect(&mut s, 1);
    let b = connect(&mut s, 2);
    let c = connect(&mut s, 3);
    let d = connect(&mut s, 4);
    // c dialled us and named its port; d dialled us and did not: it cannot be passed on.
    s.swarm.peers.get_mut(&c.key).unwrap().incoming = true;
    s.swarm.peers.get_mut(&d.key).unwrap().incoming = true;
    hello(&mut s, &c, Some(5000));
    hello(&mut s, &a, None);
    let t0 = Instant::now();
    let round = |s: &mut TorrentState, at: Instant| {
        let mut fx = Effects::default();
        s.pex_round(at, &mut fx);
        deliver(fx);
    };
    round(&mut s, t0);
    assert!(lists(&a).is_empty(), "not before {FIRST_OUT:?}");
    round(&mut s, t0 + FIRST_OUT + Duration::from_secs(1));
    let first = lists(&a);
    assert_eq!(first.len(), 1);
    let mut named: Vec<SocketAddr> = first[0].added.iter().map(|p| p.addr).collect();
    named.sort();
    let c_listen = SocketAddr::new(c.addr.ip(), 5000);
    assert_eq!(named, vec![b.addr, c_listen]);
    let to_c: Vec<SocketAddr> = lists(&c)[0].added.iter().map(|p| p.addr).collect();
    assert!(
        to_c.contains(&a.addr) && !to_c.contains(&c_listen),
        "{to_c:?}"
    );

    let mut fx = Effects::default();
    s.remove_peer(b.key, crate::peer::DropReason::Idle, &mut fx);
    round(&mut s, t0 + FIRST_OUT + Duration::from_secs(30));
    assert!(lists(&a).is_empty(), "one list a minute");
    round(
        &mut s,
        t0 + FIRST_OUT + INTERVAL_OUT + Duration::from_secs(2),
    );
    let second = lists(&a);
    assert_eq!(second.len(), 1);
    assert!(second[0].added.is_empty());
    assert_eq!(second[0].dropped, vec![b.addr]);
    round(
        &mut s,
        t0 + FIRST_OUT + 2 * INTERVAL_OUT + Duration::from_secs(3),
    );
    assert!(lists(&a).is_empty(), "nothing changed, nothing sent");
}
