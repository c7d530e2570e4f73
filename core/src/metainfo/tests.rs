use super::*;

/// Hand-rolled bencode for tests, so that odd and hostile shapes can be written exactly.
fn s(x: &str) -> String {
    format!("{}:{}", x.len(), x)
}

fn torrent(info: &str) -> Vec<u8> {
    format!("d8:announce{}4:info{}e", s("http://t/a"), info).into_bytes()
}

fn hashes(n: usize) -> String {
    format!("{}:{}", n * 20, "x".repeat(n * 20))
}

#[test]
fn single_file() {
    let info = format!(
        "d6:lengthi40000e4:name{}12:piece lengthi16384e6:pieces{}e",
        s("f.bin"),
        hashes(3)
    );
    let m = Metainfo::from_bytes(&torrent(&info)).unwrap();
    assert_eq!(m.piece_count(), 3);
    assert_eq!(m.piece_len(2), 40000 - 2 * 16384);
    assert_eq!(m.files[0].path, vec!["f.bin"]);
    assert!(!m.multi_file);
    assert_eq!(m.trackers, vec![vec!["http://t/a".to_string()]]);
    assert_eq!(
        m.info_hash.0,
        <[u8; 20]>::from(Sha1::digest(info.as_bytes()))
    );
}

#[test]
fn multi_file_offsets_and_tiers() {
    let info = format!(
        "d5:filesld6:lengthi5e4:pathl{}eed6:lengthi0e4:pathl{}{}eee4:name{}12:piece lengthi4e6:pieces{}e",
        s("a"),
        s("d"),
        s("b"),
        s("top"),
        hashes(2)
    );
    let data = format!(
        "d8:announce{}13:announce-listll{}{}el{}ee4:info{}e",
        s("http://x"),
        s("http://a"),
        s("udp://b:1"),
        s("http://a"),
        info
    );
    let m = Metainfo::from_bytes(data.as_bytes()).unwrap();
    assert!(m.multi_file);
    assert_eq!(m.files[1].path, vec!["top", "d", "b"]);
    assert_eq!(m.files[1].offset, 5);
    assert_eq!(
        m.trackers,
        vec![vec!["http://a".to_string(), "udp://b:1".to_string()]]
    );
}

#[test]
fn hostile_torrents_are_refused() {
    let cases = [
        // traversal
        format!(
            "d5:filesld6:lengthi5e4:pathl{}{}eee4:name{}12:piece lengthi4e6:pieces{}e",
            s(".."),
            s("x"),
            s("t"),
            hashes(2)
        ),
        // piece length zero
        format!(
            "d6:lengthi4e4:name{}12:piece lengthi0e6:pieces{}e",
            s("f"),
            hashes(1)
        ),
        // wrong hash length
        format!(
            "d6:lengthi4e4:name{}12:piece lengthi4e6:pieces3:abce",
            s("f")
        ),
        // too few hashes
        format!(
            "d6:lengthi40e4:name{}12:piece lengthi4e6:pieces{}e",
            s("f"),
            hashes(2)
        ),
        // wrong type
        format!(
            "d6:length3:abc4:name{}12:piece lengthi4e6:pieces{}e",
            s("f"),
            hashes(1)
        ),
        // duplicate
        format!(
            "d5:filesld6:lengthi1e4:pathl{}eed6:lengthi1e4:pathl{}eee4:name{}12:piece lengthi4e6:pieces{}e",
            s("a"),
            s("a"),
            s("t"),
            hashes(1)
        ),
        // name is ..
        format!(
            "d6:lengthi4e4:name{}12:piece lengthi4e6:pieces{}e",
            s(".."),
            hashes(1)
        ),
    ];
    for info in cases {
        let e = Metainfo::from_bytes(&torrent(&info));
        assert!(e.is_err(), "accepted {info}");
        assert!(!e.unwrap_err().to_string().contains('\n'));
    }
    assert!(Metainfo::from_bytes(b"d4:infod").is_err());
    // The decoder quotes a bad integer: newline, escape and length must not reach the message.
    for bad in [
        "i\n\x1b[2J4e".to_string(),
        format!("i{}e", "9".repeat(100_000)),
    ] {
        let info = format!(
            "d6:length{bad}4:name{}12:piece lengthi4e6:pieces{}e",
            s("f"),
            hashes(1)
        );
        let e = Metainfo::from_bytes(&torrent(&info))
            .unwrap_err()
            .to_string();
        assert!(!e.chars().any(char::is_control) && e.len() < 400, "{e:?}");
    }
    assert!(Metainfo::from_bytes(b"not a torrent").is_err());
}
