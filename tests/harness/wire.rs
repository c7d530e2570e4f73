//! The BEP 3 wire format written out by hand for the fault-injecting peers ([`crate::fake_peer`],
//! [`crate::raw_peer`]): a well-behaved protocol library could not produce their faults.

pub const PROTOCOL: &[u8] = b"BitTorrent protocol";
pub const CHOKE: u8 = 0;
pub const UNCHOKE: u8 = 1;
pub const INTERESTED: u8 = 2;
pub const HAVE: u8 = 4;
pub const BITFIELD: u8 = 5;
pub const REQUEST: u8 = 6;
pub const PIECE: u8 = 7;
/// Fast extension (BEP 6) message ids.
pub const HAVE_ALL: u8 = 0x0E;
pub const REJECT_REQUEST: u8 = 0x10;

/// The 68-byte handshake for `info_hash` with a random `-FP0001-` peer id.
pub fn handshake(info_hash: &[u8; 20]) -> Vec<u8> {
    handshake_reserved(info_hash, [0u8; 8])
}

/// [`handshake`] announcing the fast extension (BEP 6: bit 0x04 of the last reserved byte).
pub fn fast_handshake(info_hash: &[u8; 20]) -> Vec<u8> {
    handshake_reserved(info_hash, [0, 0, 0, 0, 0, 0, 0, FAST_BIT])
}

/// Whether a 68-byte handshake announces the fast extension.
pub fn announces_fast(hs: &[u8; 68]) -> bool {
    hs[27] & FAST_BIT != 0
}

const FAST_BIT: u8 = 0x04;

/// The extension protocol's message id (BEP 10); its handshake is extended id 0.
pub const EXTENDED: u8 = 20;

/// [`handshake`] announcing the extension protocol (BEP 10: bit 0x10 of reserved byte 5).
pub fn extension_handshake(info_hash: &[u8; 20]) -> Vec<u8> {
    handshake_reserved(info_hash, [0, 0, 0, 0, 0, 0x10, 0, 0])
}

/// An extension message: extended id `ext_id` (0: the extension handshake) and its payload.
pub fn extended(ext_id: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![ext_id];
    body.extend_from_slice(payload);
    message(EXTENDED, &body)
}

fn handshake_reserved(info_hash: &[u8; 20], reserved: [u8; 8]) -> Vec<u8> {
    let mut hs = Vec::with_capacity(68);
    hs.push(PROTOCOL.len() as u8);
    hs.extend_from_slice(PROTOCOL);
    hs.extend_from_slice(&reserved);
    hs.extend_from_slice(info_hash);
    hs.extend_from_slice(b"-FP0001-");
    hs.extend_from_slice(&rand::random::<[u8; 12]>());
    hs
}

/// The info-hash a 68-byte handshake names, if it is a BitTorrent handshake at all.
pub fn handshake_info_hash(hs: &[u8; 68]) -> Option<[u8; 20]> {
    if hs[0] as usize != PROTOCOL.len() || &hs[1..20] != PROTOCOL {
        return None;
    }
    hs[28..48].try_into().ok()
}

/// A length-prefixed message.
pub fn message(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(5 + payload.len());
    m.extend_from_slice(&(1 + payload.len() as u32).to_be_bytes());
    m.push(id);
    m.extend_from_slice(payload);
    m
}

pub fn piece(index: u32, begin: u32, data: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8 + data.len());
    payload.extend_from_slice(&index.to_be_bytes());
    payload.extend_from_slice(&begin.to_be_bytes());
    payload.extend_from_slice(data);
    message(PIECE, &payload)
}

pub fn request(index: u32, begin: u32, length: u32) -> Vec<u8> {
    let mut payload = Vec::with_capacity(12);
    for v in [index, begin, length] {
        payload.extend_from_slice(&v.to_be_bytes());
    }
    message(REQUEST, &payload)
}

pub fn have(index: u32) -> Vec<u8> {
    message(HAVE, &index.to_be_bytes())
}

/// A bitfield with the first `pieces` bits set and the spare bits clear, as BEP 3 wants.
pub fn full_bitfield(pieces: u32) -> Vec<u8> {
    let n = pieces as usize;
    let mut bits = vec![0xffu8; n.div_ceil(8)];
    if !n.is_multiple_of(8) {
        let last = bits.len() - 1;
        bits[last] = 0xffu8 << (8 - n % 8);
    }
    bits
}
