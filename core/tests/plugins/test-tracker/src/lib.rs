//! A tracker that answers from the request: peers at the request's port on 127.0.0.1 and ::1,
//! the event, key and local address echoed in the warning, a failure for `Stopped`, a timeout for a zero
//! timeout.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use rivulet_core::plugin::{
    AnnounceEvent, AnnounceRequest, AnnounceResponse, Tracker, TrackerError, TrackerOpen,
};

pub struct EchoTracker {
    url: String,
}

impl TrackerOpen for EchoTracker {
    fn open(url: &str) -> Result<Self, TrackerError> {
        if url.contains("refuse") {
            return Err(TrackerError::Unsupported(format!(
                "{url}: refused by test tracker"
            )));
        }
        Ok(EchoTracker {
            url: url.to_string(),
        })
    }
}

impl Tracker for EchoTracker {
    fn url(&self) -> &str {
        &self.url
    }

    fn announce(&self, req: &AnnounceRequest) -> Result<AnnounceResponse, TrackerError> {
        if req.event == AnnounceEvent::Stopped {
            return Err(TrackerError::Failure(
                "stopped announces are refused".into(),
            ));
        }
        if req.timeout.is_zero() {
            return Err(TrackerError::Timeout);
        }
        Ok(AnnounceResponse {
            peers: vec![
                SocketAddr::from(([127, 0, 0, 1], req.port)),
                SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, req.port + 1, 0, 3)),
            ],
            interval: Duration::from_secs(1800),
            min_interval: Some(Duration::from_millis(req.timeout.as_millis() as u64)),
            seeders: Some(req.num_want),
            leechers: None,
            warning: Some(format!(
                "{:?} key={} left={} hash0={} id0={} from={:?}",
                req.event, req.key, req.left, req.info_hash[0], req.peer_id[0], req.local_ip
            )),
        })
    }
}

rivulet_core::export_tracker!(EchoTracker, "echo", "0.2.0", schemes = ["test", "TESTS"]);
