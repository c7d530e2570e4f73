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
        // empty path list
        format!(
            "d5:filesld6:lengthi5e4:pathleee4:name{}12:piece lengthi4e6:pieces{}e",
            s("t"),
            hashes(2)
        ),
        // wrong type
        format!(
            "d6:length3:abc4:name{}12:piece lengthi4e6:pieces{}e",
            s("f"),
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

#[test]
fn unsafe_names_are_made_safe_and_marked() {
    let info = format!(
        "d5:filesld6:lengthi5e4:pathl{}{}{}eed6:lengthi1e4:pathl{}eed6:lengthi1e4:pathl{}eee4:name{}12:piece lengthi4e6:pieces{}e",
        s(".."),
        s(".."),
        s("x"),
        s("x"),
        s("a/b"),
        s(".."),
        hashes(2)
    );
    let m = Metainfo::from_bytes(&torrent(&info)).unwrap();
    let hex = m.info_hash.hex();
    let paths: Vec<Vec<String>> = m.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(
        paths,
        vec![
            vec![hex.clone(), "x".to_string()],
            vec![hex.clone(), "x.1".to_string()],
            vec![hex.clone(), "a_b".to_string()],
        ]
    );
    assert_eq!(m.name_original.as_deref(), Some(".."));
    assert_eq!(m.files[0].original.as_deref(), Some("../../x"));
    assert_eq!(m.files[1].original.as_deref(), Some("x"));
    assert_eq!(m.files[2].original.as_deref(), Some("a/b"));
}

#[test]
fn optional_fields_of_the_wrong_type_are_ignored_and_urls_trimmed() {
    let info = format!(
        "d6:lengthi4e4:name{}12:piece lengthi4e6:pieces{}e",
        s("f"),
        hashes(1)
    );
    let data = format!(
        "d8:announce{}13:announce-list0:7:commenti3e13:creation date1:x4:info{}8:url-listi1ee\n",
        s(" \thttp://t/a "),
        info
    );
    let m = Metainfo::from_bytes(data.as_bytes()).unwrap();
    assert_eq!(m.trackers, vec![vec!["http://t/a".to_string()]]);
    assert_eq!(m.comment, None);
    assert_eq!(m.creation_date, None);
    assert!(m.url_list.is_empty());
    // Whitespace after the dictionary is harmless; other bytes are not.
    let data = format!("d4:info{info}e\r\n");
    assert!(Metainfo::from_bytes(data.as_bytes()).is_ok());
    let data = format!("d4:info{info}ex");
    assert!(Metainfo::from_bytes(data.as_bytes()).is_err());
}

#[test]
fn pad_files_leave_gaps_and_symlinks_take_no_bytes() {
    let info = format!(
        "d5:filesld6:lengthi3e4:pathl{}eed4:attr1:p6:lengthi1eed4:attr1:l6:lengthi9e4:pathl{}{}e12:symlink pathl{}{}eed4:attr1:x6:lengthi4e4:pathl{}eee4:name{}12:piece lengthi4e6:pieces{}e",
        s("a"),
        s("d"),
        s("link"),
        s(".."),
        s("a"),
        s("run"),
        s("t"),
        hashes(2)
    );
    let m = Metainfo::from_bytes(&torrent(&info)).unwrap();
    assert_eq!(m.total_length, 8);
    let files: Vec<(String, u64, u64)> = m
        .files
        .iter()
        .map(|f| (f.path.join("/"), f.offset, f.length))
        .collect();
    assert_eq!(
        files,
        vec![("t/a".to_string(), 0, 3), ("t/run".to_string(), 4, 4)]
    );
    assert!(m.files[1].attr.executable);
    assert_eq!(m.symlinks.len(), 1);
    assert_eq!(m.symlinks[0].target, vec!["t", "a"]);
    assert_eq!(
        m.symlinks[0].relative_target(),
        std::path::Path::new("../a")
    );
}

/// A v2-only torrent of files `(name, data)` with 16 KiB pieces, with or without its piece
/// layers; returned with its info dictionary's bytes.
fn v2_torrent(files: &[(&str, &[u8])], layers: bool) -> (Vec<u8>, Vec<u8>) {
    use super::merkle::{BLOCK, data_root, sha256};
    let mut tree = b"d".to_vec();
    let mut layer_dict = b"d".to_vec();
    for (name, data) in files {
        let leaves: Vec<_> = data.chunks(BLOCK as usize).map(sha256).collect();
        let root = data_root(data, leaves.len().next_power_of_two() as u64);
        tree.extend(format!("{}d0:d6:lengthi{}e11:pieces root32:", s(name), data.len()).bytes());
        tree.extend(root);
        tree.extend(b"ee");
        if leaves.len() > 1 {
            layer_dict.extend(b"32:");
            layer_dict.extend(root);
            layer_dict.extend(format!("{}:", 32 * leaves.len()).bytes());
            leaves.iter().for_each(|l| layer_dict.extend(l));
        }
    }
    tree.push(b'e');
    layer_dict.push(b'e');
    let mut info = b"d9:file tree".to_vec();
    info.extend(tree);
    info.extend(format!("12:meta versioni2e4:name{}12:piece lengthi16384ee", s("t")).bytes());
    let mut data = b"d4:info".to_vec();
    data.extend(&info);
    if layers {
        data.extend(b"12:piece layers");
        data.extend(layer_dict);
    }
    data.push(b'e');
    (data, info)
}

#[test]
fn v2_only_pieces_are_checked_by_their_merkle_roots() {
    use super::merkle::sha256;
    // a: 5000 bytes in piece 0 (the rest of it padding); b: 1.5 pieces from piece 1.
    let a: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let b: Vec<u8> = (0..24576u32).map(|i| (i / 7) as u8).collect();
    let (data, info) = v2_torrent(&[("a", &a), ("b", &b)], true);
    let m = Metainfo::from_bytes(&data).unwrap();
    assert_eq!(m.version, Version::V2);
    assert_eq!(&m.info_hash.0, &sha256(&info)[..20]);
    assert_eq!(m.piece_count(), 3);
    assert_eq!(m.files[1].offset, 16384, "b starts on a piece boundary");
    assert!(!m.lacks_piece_layers());
    let mut piece0 = a.clone();
    piece0.resize(16384, 0);
    assert!(m.piece_matches(0, &piece0));
    assert!(m.piece_matches(1, &b[..16384]));
    let mut piece2 = b[16384..].to_vec();
    piece2.resize(16384, 0);
    assert_eq!(
        m.piece_len(2),
        16384,
        "the last piece is padded to a whole piece"
    );
    assert!(m.piece_matches(2, &piece2));
    let mut bad = piece2.clone();
    bad[100] ^= 1;
    assert!(!m.piece_matches(2, &bad), "a flipped bit passed");
    assert!(!m.piece_matches(1, &b[16384..]), "the wrong piece passed");
    assert!(
        !m.piece_matches(3, &b[..16384]),
        "a piece past the end passed"
    );
}

#[test]
fn a_v2_only_torrent_without_piece_layers_parses_and_lacks_them() {
    let b: Vec<u8> = (0..24576u32).map(|i| i as u8).collect();
    let (data, _) = v2_torrent(&[("b", &b)], false);
    let m = Metainfo::from_bytes(&data).unwrap();
    assert_eq!(m.missing_piece_layers, 1);
    assert!(m.lacks_piece_layers());
    assert!(
        !m.piece_matches(0, &b[..16384]),
        "a piece with no hash passed"
    );
}

#[test]
fn a_v2_file_tree_claiming_terabytes_in_small_pieces_costs_nothing_per_piece() {
    use super::merkle::sha256;
    // 8 TiB in 16 KiB pieces: 2^29 pieces. Anything kept per piece would take gigabytes (this
    // test then dies of it); the claim is backed by no layer, so nothing can be transferred.
    let length: u64 = 1 << 43;
    let mut info = format!(
        "d9:file treed{}d0:d6:lengthi{length}e11:pieces root32:",
        s("f")
    )
    .into_bytes();
    info.extend(sha256(b"r"));
    info.extend(
        format!(
            "eee12:meta versioni2e4:name{}12:piece lengthi16384ee",
            s("f")
        )
        .bytes(),
    );
    let mut data = b"d4:info".to_vec();
    data.extend(&info);
    data.push(b'e');
    let m = Metainfo::from_bytes(&data).unwrap();
    assert_eq!(m.piece_count(), 1 << 29);
    assert_eq!(m.missing_piece_layers, 1);
    assert!(!m.has_piece_root(12345));
    assert!(m.lacks_piece_layers());
}

#[test]
fn hash_requests_are_answered_from_the_piece_layer_with_a_proof_and_refused_otherwise() {
    use super::merkle::{BLOCK, data_root, sha256};
    use super::piece_tree::proven_node;
    // 16 KiB pieces: the piece layer is the block layer (base layer 0). b has 40 pieces, so
    // its layer pads to 64 (height 6); a is one piece and has no layer.
    let a = vec![7u8; 100];
    let b: Vec<u8> = (0..40 * BLOCK as u32).map(|i| (i / 5) as u8).collect();
    let (data, _) = v2_torrent(&[("a", &a), ("b", &b)], true);
    let m = Metainfo::from_bytes(&data).unwrap();
    let root = data_root(&b, 64);
    let leaves: Vec<_> = b.chunks(BLOCK as usize).map(sha256).collect();
    // libtorrent's ask: 32 from 32 (the last chunk), proof of 5 levels = one uncle.
    let got = m.serve_hashes(&root, 0, 32, 32, 5).unwrap();
    assert_eq!(got.len(), 33);
    assert_eq!(got[..8], leaves[32..]);
    assert_eq!(got[8], [0; 32], "padding past the end of the file");
    assert_eq!(proven_node(&got[..32], 32, &got[32..]), Some(root));
    // The whole layer, no uncle; and a single hash with every uncle.
    assert_eq!(m.serve_hashes(&root, 0, 0, 64, 5).unwrap().len(), 64);
    let one = m.serve_hashes(&root, 0, 5, 1, 5).unwrap();
    assert_eq!(proven_node(&one[..1], 5, &one[1..]), Some(root));
    let refused = [
        (sha256(b"unknown"), 0, 0, 32, 5),
        (data_root(&a, 1), 0, 0, 1, 0),
        (root, 1, 0, 32, 4),
        (root, 0, 0, 3, 0),
        (root, 0, 16, 32, 5),
        (root, 0, 64, 32, 5),
        (root, 0, 0, 1024, 5),
        (root, 0, 0, 32, 6),
        (root, 0, u32::MAX, 1, 0),
        (root, 0, 0, 0, 0),
    ];
    for (r, base, index, length, proof) in refused {
        assert_eq!(
            m.serve_hashes(&r, base, index, length, proof),
            None,
            "{base} {index} {length} {proof}"
        );
    }
}

#[test]
fn a_piece_hashed_in_parts_of_any_size_matches_as_the_whole_does() {
    // One file of 2.5 pieces of 64 KiB (four blocks each): v2 with its layer, and v1.
    let data: Vec<u8> = (0..163_840u32).map(|i| (i * 13 % 251) as u8).collect();
    let piece = 65536u64;
    let (info, root, layer) = super::v2::one_file_for_tests(&data, piece);
    let v2 = Metainfo::from_bytes(&torrent_file_with_layers(&info, &[], &[(root, layer)])).unwrap();
    let hashes: Vec<u8> = data
        .chunks(piece as usize)
        .flat_map(|p| <[u8; 20]>::from(sha1::Sha1::digest(p)))
        .collect();
    let mut v1 = format!(
        "d6:lengthi{}e4:name1:f12:piece lengthi{piece}e6:pieces60:",
        data.len()
    )
    .into_bytes();
    v1.extend(hashes);
    v1.push(b'e');
    let v1 = Metainfo::from_bytes(&torrent_file(&v1, &[])).unwrap();
    for m in [&v1, &v2] {
        for p in 0..3u32 {
            let start = p as usize * piece as usize;
            let bytes = &data[start..(start + piece as usize).min(data.len())];
            let mut padded = bytes.to_vec();
            padded.resize(m.piece_len(p) as usize, 0);
            for cut in [1usize, 1000, 16384, 20000] {
                let mut h = m.piece_hasher(p);
                padded.chunks(cut).for_each(|c| h.update(c));
                assert!(h.matches(), "piece {p} in parts of {cut}");
            }
            let mut wrong = padded.clone();
            wrong[bytes.len() / 2] ^= 1;
            let mut h = m.piece_hasher(p);
            h.update(&wrong);
            assert!(!h.matches(), "piece {p} with a flipped byte");
            let mut h = m.piece_hasher(p);
            h.update(&padded[..bytes.len() - 1]);
            assert!(!h.matches(), "piece {p} one byte short");
        }
    }
}
