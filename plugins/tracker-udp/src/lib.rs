//! UDP tracker client (BEP 15, with the URL path sent as BEP 41 URL data). IPv4 only: a tracker
//! host that resolves to IPv6 addresses alone is reported as unsupported.
//!
//! A connection id is kept for 60 s (BEP 15 allows one minute) and reused by later announces.

mod exchange;
mod packet;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rivulet_core::plugin::{AnnounceRequest, AnnounceResponse, Tracker, TrackerError, TrackerOpen};
use url::{Host, Position, Url};

use crate::exchange::Exchange;

const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

pub struct UdpTracker {
    url: String,
    host: String,
    port: u16,
    /// Path and query of the URL (BEP 41), e.g. a private tracker's passkey.
    url_data: Vec<u8>,
    connection: Mutex<Option<Connection>>,
}

#[derive(Clone, Copy)]
struct Connection {
    id: u64,
    tracker: SocketAddr,
    obtained: Instant,
}

impl UdpTracker {
    /// A client for the `udp://host:port[/path]` announce URL `url`.
    pub fn open(url: &str) -> Result<Self, TrackerError> {
        let unsupported = |why: &str| TrackerError::Unsupported(format!("{url}: {why}"));
        let parsed = Url::parse(url).map_err(|e| unsupported(&e.to_string()))?;
        if parsed.scheme() != "udp" {
            return Err(unsupported("not a udp URL"));
        }
        let host = match parsed.host() {
            Some(Host::Domain(d)) => d.to_string(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(_)) => return Err(unsupported("IPv6 UDP trackers are not supported")),
            None => return Err(unsupported("no host")),
        };
        let port = parsed.port().ok_or_else(|| unsupported("no port"))?;
        let rest = &parsed[Position::BeforePath..];
        let url_data = if rest.is_empty() || rest == "/" {
            Vec::new()
        } else {
            rest.as_bytes().to_vec()
        };
        Ok(UdpTracker {
            url: url.to_string(),
            host,
            port,
            url_data,
            connection: Mutex::new(None),
        })
    }

    /// The tracker's first IPv4 address, resolved within the deadline.
    fn resolve(&self, deadline: Instant) -> Result<SocketAddr, TrackerError> {
        use rivulet_core::rt;
        use std::net::ToSocketAddrs;
        let left = deadline.saturating_duration_since(Instant::now());
        let target = (self.host.clone(), self.port);
        let lookup = rt::blocking(move || {
            target
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<SocketAddr>>())
        });
        let addrs: Vec<SocketAddr> = rt::block_on(rt::timeout(left, lookup))
            .map_err(|_| TrackerError::Timeout)?
            .map_err(|e| TrackerError::Unreachable(format!("{}: {e}", self.host)))?;
        match addrs.iter().find(|a| a.is_ipv4()) {
            Some(a) => Ok(*a),
            None if addrs.is_empty() => Err(TrackerError::Unreachable(format!(
                "{}: no address",
                self.host
            ))),
            None => Err(TrackerError::Unsupported(format!(
                "{}: IPv6 UDP trackers are not supported",
                self.host
            ))),
        }
    }

    fn cached(&self, tracker: SocketAddr) -> Option<u64> {
        let c = (*self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner))?;
        (c.tracker == tracker && c.obtained.elapsed() < CONNECTION_LIFETIME).then_some(c.id)
    }

    fn remember(&self, c: Option<Connection>) {
        *self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = c;
    }

    fn exchange(
        &self,
        ex: &Exchange,
        req: &AnnounceRequest,
    ) -> Result<AnnounceResponse, TrackerError> {
        let id = match self.cached(ex.tracker) {
            Some(id) => id,
            None => {
                let transaction = fastrand::u32(..);
                let obtained = Instant::now();
                let reply = ex.run(&packet::connect(transaction), transaction)?;
                let id = packet::connection_id(&reply)?;
                self.remember(Some(Connection {
                    id,
                    tracker: ex.tracker,
                    obtained,
                }));
                id
            }
        };
        let transaction = fastrand::u32(..);
        let request = packet::announce(id, transaction, req, &self.url_data);
        packet::announce_response(&ex.run(&request, transaction)?)
    }
}

impl Tracker for UdpTracker {
    fn url(&self) -> &str {
        &self.url
    }

    fn announce(&self, req: &AnnounceRequest) -> Result<AnnounceResponse, TrackerError> {
        let deadline = Instant::now() + req.timeout;
        let tracker = self.resolve(deadline)?;
        // From the session's listen address when it names one: the tracker records the
        // datagram's source as our address.
        let local = match req.local_ip {
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(ip @ IpAddr::V4(_)) => ip,
            Some(ip @ IpAddr::V6(_)) => {
                return Err(TrackerError::Unsupported(format!(
                    "{}: announcing from the IPv6 address {ip}: IPv6 UDP trackers are not supported",
                    self.url
                )));
            }
        };
        let socket = UdpSocket::bind(SocketAddr::new(local, 0)).map_err(|e| {
            TrackerError::Unreachable(format!("binding a UDP socket to {local}: {e}"))
        })?;
        let ex = Exchange {
            socket: &socket,
            tracker,
            deadline,
            base: exchange::base_wait(req.timeout),
        };
        let result = self.exchange(&ex, req);
        if result.is_err() {
            // The tracker may have restarted or expired our id (some say so in an error reply, some
            // just go silent): get a fresh one next time.
            self.remember(None);
        }
        if let Ok(r) = &result {
            tracing::debug!(url = %self.url, peers = r.peers.len(), "announced");
        }
        result
    }
}

impl TrackerOpen for UdpTracker {
    fn open(url: &str) -> Result<Self, TrackerError> {
        UdpTracker::open(url)
    }
}

rivulet_core::export_tracker!(
    UdpTracker,
    "udp",
    env!("CARGO_PKG_VERSION"),
    schemes = ["udp"]
);
