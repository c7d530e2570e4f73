//! The announce URL: the tracker's own URL (with any passkey query kept) plus BEP 3 parameters.

use percent_encoding::{NON_ALPHANUMERIC, percent_encode};
use rivulet_core::plugin::{AnnounceEvent, AnnounceRequest};
use url::Url;

pub(crate) fn announce_url(base: &Url, req: &AnnounceRequest) -> Url {
    // info_hash and peer_id are raw bytes, not text: encode every byte that is not plainly safe.
    let mut query = format!(
        "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}&compact=1&numwant={}&key={:08x}",
        percent_encode(&req.info_hash, NON_ALPHANUMERIC),
        percent_encode(&req.peer_id, NON_ALPHANUMERIC),
        req.port,
        req.uploaded,
        req.downloaded,
        req.left,
        req.num_want,
        req.key,
    );
    let event = match req.event {
        AnnounceEvent::None => None,
        AnnounceEvent::Started => Some("started"),
        AnnounceEvent::Completed => Some("completed"),
        AnnounceEvent::Stopped => Some("stopped"),
    };
    if let Some(event) = event {
        query.push_str("&event=");
        query.push_str(event);
    }
    let mut url = base.clone();
    match base.query().filter(|q| !q.is_empty()) {
        Some(existing) => url.set_query(Some(&format!("{existing}&{query}"))),
        None => url.set_query(Some(&query)),
    }
    url
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn req(event: AnnounceEvent) -> AnnounceRequest {
        let mut info_hash = [0u8; 20];
        info_hash[0] = 0xff;
        info_hash[1] = b'a';
        info_hash[2] = b' ';
        AnnounceRequest {
            info_hash,
            peer_id: *b"-RV0001-abcdefghijkl",
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event,
            num_want: 50,
            key: 0xdead,
            timeout: Duration::from_secs(1),
            local_ip: None,
        }
    }

    #[test]
    fn keeps_the_passkey_and_encodes_raw_bytes() {
        let base = Url::parse("http://t.example:8080/announce?passkey=s3cr%2Ft").unwrap();
        let url = announce_url(&base, &req(AnnounceEvent::Started));
        let q = url.query().unwrap();
        assert!(
            q.starts_with("passkey=s3cr%2Ft&info_hash=%FFa%20%00%00"),
            "{q}"
        );
        assert!(q.contains("&peer_id=%2DRV0001%2Dabcdefghijkl&port=6881&uploaded=1"));
        assert!(q.contains("&left=3&compact=1&numwant=50&key=0000dead&event=started"));
        let none = announce_url(&base, &req(AnnounceEvent::None));
        assert!(!none.query().unwrap().contains("event"));
    }
}
