//! A [`Tracker`] across the boundary: its method list, from which [`abi_table!`] makes the C
//! table, the plugin-side shims and [`DynTracker`]; and how a request and a response cross. The
//! response's peer array and warning are allocated by the plugin; the host copies them and
//! hands the struct back through the `release` function the plugin put in it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use crate::plugin::abi::descriptor::KIND_TRACKER;
use crate::plugin::abi::fault::{Fault, STATUS_TRACKER_BAD_REPLY};
use crate::plugin::abi::raw::RawSlice;
use crate::plugin::abi::table::abi_table;
use crate::plugin::abi::wire::{Arg, Ret};
use crate::plugin::tracker::{
    AnnounceEvent, AnnounceRequest, AnnounceResponse, Tracker, TrackerError, TrackerOpen,
};

pub const EVENT_NONE: u32 = 0;
pub const EVENT_STARTED: u32 = 1;
pub const EVENT_COMPLETED: u32 = 2;
pub const EVENT_STOPPED: u32 = 3;

/// An [`AnnounceRequest`] as it crosses.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AnnounceRequestRef {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    /// One of the `EVENT_*` constants.
    pub event: u32,
    pub num_want: u32,
    pub key: u32,
    pub timeout_ms: u64,
    /// Where the announce must leave from: `family` 0 (and the rest zero) for "the routing
    /// table chooses", else 4 or 6 with port 0. Its size changes the tracker fingerprint, so a
    /// plugin built before it existed is refused rather than handed a request it would misread.
    pub local_ip: PeerAddr,
}

impl AnnounceRequestRef {
    fn new(r: &AnnounceRequest) -> Self {
        AnnounceRequestRef {
            info_hash: r.info_hash,
            peer_id: r.peer_id,
            port: r.port,
            uploaded: r.uploaded,
            downloaded: r.downloaded,
            left: r.left,
            event: match r.event {
                AnnounceEvent::None => EVENT_NONE,
                AnnounceEvent::Started => EVENT_STARTED,
                AnnounceEvent::Completed => EVENT_COMPLETED,
                AnnounceEvent::Stopped => EVENT_STOPPED,
            },
            num_want: r.num_want,
            key: r.key,
            timeout_ms: u64::try_from(r.timeout.as_millis()).unwrap_or(u64::MAX),
            local_ip: r
                .local_ip
                .map_or(PeerAddr::NONE, |ip| PeerAddr::new(&SocketAddr::new(ip, 0))),
        }
    }

    fn to_request(self) -> Result<AnnounceRequest, Fault> {
        Ok(AnnounceRequest {
            info_hash: self.info_hash,
            peer_id: self.peer_id,
            port: self.port,
            uploaded: self.uploaded,
            downloaded: self.downloaded,
            left: self.left,
            event: match self.event {
                EVENT_NONE => AnnounceEvent::None,
                EVENT_STARTED => AnnounceEvent::Started,
                EVENT_COMPLETED => AnnounceEvent::Completed,
                EVENT_STOPPED => AnnounceEvent::Stopped,
                other => return Err(Fault::invalid(&format!("unknown announce event {other}"))),
            },
            num_want: self.num_want,
            key: self.key,
            timeout: Duration::from_millis(self.timeout_ms),
            local_ip: match self.local_ip.family {
                0 => None,
                family => Some(
                    self.local_ip
                        .to_socket_addr()
                        .ok_or_else(|| {
                            Fault::invalid(&format!("local address with address family {family}"))
                        })?
                        .ip(),
                ),
            },
        })
    }
}

/// One peer, or a local address: `family` 4 (first 4 bytes of `ip` used) or 6.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    pub family: u8,
    pub ip: [u8; 16],
    pub port: u16,
    pub flowinfo: u32,
    pub scope_id: u32,
}

impl PeerAddr {
    /// No address (family 0).
    const NONE: PeerAddr = PeerAddr {
        family: 0,
        ip: [0; 16],
        port: 0,
        flowinfo: 0,
        scope_id: 0,
    };

    fn new(a: &SocketAddr) -> Self {
        match a {
            SocketAddr::V4(v4) => {
                let mut ip = [0; 16];
                ip[..4].copy_from_slice(&v4.ip().octets());
                PeerAddr {
                    family: 4,
                    ip,
                    port: v4.port(),
                    flowinfo: 0,
                    scope_id: 0,
                }
            }
            SocketAddr::V6(v6) => PeerAddr {
                family: 6,
                ip: v6.ip().octets(),
                port: v6.port(),
                flowinfo: v6.flowinfo(),
                scope_id: v6.scope_id(),
            },
        }
    }

    fn to_socket_addr(self) -> Option<SocketAddr> {
        match self.family {
            4 => {
                let [a, b, c, d, ..] = self.ip;
                Some(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
                    self.port,
                ))
            }
            6 => Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(self.ip),
                self.port,
                self.flowinfo,
                self.scope_id,
            ))),
            _ => None,
        }
    }
}

/// An [`AnnounceResponse`] as it crosses. The host zeroes it; on success the plugin fills it and
/// owns `peers` and `warning` until the host passes the struct to `free_response`.
#[repr(C)]
#[derive(Debug)]
pub struct AnnounceResponseOut {
    pub peers: *mut PeerAddr,
    pub peers_len: usize,
    pub interval_ms: u64,
    pub has_min_interval: u8,
    pub min_interval_ms: u64,
    pub has_seeders: u8,
    pub seeders: u32,
    pub has_leechers: u8,
    pub leechers: u32,
    /// UTF-8, null if there is no warning.
    pub warning: *mut u8,
    pub warning_len: usize,
    /// Frees `peers` and `warning`; set by the plugin that allocated them.
    pub release: Option<unsafe extern "C" fn(*mut AnnounceResponseOut)>,
}

impl AnnounceResponseOut {
    const EMPTY: Self = AnnounceResponseOut {
        peers: std::ptr::null_mut(),
        peers_len: 0,
        interval_ms: 0,
        has_min_interval: 0,
        min_interval_ms: 0,
        has_seeders: 0,
        seeders: 0,
        has_leechers: 0,
        leechers: 0,
        warning: std::ptr::null_mut(),
        warning_len: 0,
        release: None,
    };

    fn fill(&mut self, r: AnnounceResponse) {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let peers: Box<[PeerAddr]> = r.peers.iter().map(PeerAddr::new).collect();
        self.peers_len = peers.len();
        self.peers = Box::into_raw(peers).cast();
        self.interval_ms = millis(r.interval);
        self.has_min_interval = u8::from(r.min_interval.is_some());
        self.min_interval_ms = r.min_interval.map_or(0, millis);
        self.has_seeders = u8::from(r.seeders.is_some());
        self.seeders = r.seeders.unwrap_or(0);
        self.has_leechers = u8::from(r.leechers.is_some());
        self.leechers = r.leechers.unwrap_or(0);
        if let Some(w) = r.warning {
            let w = w.into_boxed_str().into_boxed_bytes();
            self.warning_len = w.len();
            self.warning = Box::into_raw(w).cast();
        }
        self.release = Some(release_response);
    }

    /// Copies the response out; the plugin still owns the arrays.
    ///
    /// # Safety
    /// The pointers must be as a successful `announce` left them.
    unsafe fn to_response(&self) -> Result<AnnounceResponse, Fault> {
        let peers = if self.peers.is_null() || self.peers_len == 0 {
            Vec::new()
        } else {
            // SAFETY: guaranteed by the caller: the plugin allocated `peers_len` entries.
            unsafe { std::slice::from_raw_parts(self.peers.cast_const(), self.peers_len) }
                .iter()
                .map(|p| {
                    p.to_socket_addr().ok_or_else(|| {
                        Fault::new(
                            STATUS_TRACKER_BAD_REPLY,
                            format!("peer with address family {}", p.family),
                        )
                    })
                })
                .collect::<Result<_, _>>()?
        };
        // SAFETY: the plugin allocated `warning_len` bytes at `warning`.
        let warning = unsafe {
            RawSlice {
                ptr: self.warning.cast_const(),
                len: self.warning_len,
            }
            .as_bytes()
        };
        Ok(AnnounceResponse {
            peers,
            interval: Duration::from_millis(self.interval_ms),
            min_interval: (self.has_min_interval != 0)
                .then(|| Duration::from_millis(self.min_interval_ms)),
            seeders: (self.has_seeders != 0).then_some(self.seeders),
            leechers: (self.has_leechers != 0).then_some(self.leechers),
            warning: (!self.warning.is_null())
                .then(|| String::from_utf8_lossy(warning).into_owned()),
        })
    }
}

/// Frees what [`AnnounceResponseOut::fill`] allocated; the host calls it once per response.
unsafe extern "C" fn release_response(resp: *mut AnnounceResponseOut) {
    // SAFETY: the host passes back a response this plugin filled, once.
    let Some(resp) = (unsafe { resp.as_mut() }) else {
        return;
    };
    if !resp.peers.is_null() {
        let peers = std::ptr::slice_from_raw_parts_mut(resp.peers, resp.peers_len);
        // SAFETY: allocated as a Box<[PeerAddr]> in `fill`.
        drop(unsafe { Box::from_raw(peers) });
    }
    if !resp.warning.is_null() {
        let warning = std::ptr::slice_from_raw_parts_mut(resp.warning, resp.warning_len);
        // SAFETY: allocated as a Box<[u8]> in `fill`.
        drop(unsafe { Box::from_raw(warning) });
    }
    *resp = AnnounceResponseOut::EMPTY;
}

impl Arg for &AnnounceRequest {
    type Raw = AnnounceRequestRef;
    type Lowered = AnnounceRequestRef;
    type Lifted = AnnounceRequest;
    type Rebuilt<'l>
        = &'l AnnounceRequest
    where
        Self: 'l;

    fn lower(self) -> AnnounceRequestRef {
        AnnounceRequestRef::new(self)
    }
    fn raw(lowered: &AnnounceRequestRef) -> AnnounceRequestRef {
        *lowered
    }
    unsafe fn lift(raw: AnnounceRequestRef) -> Result<AnnounceRequest, Fault> {
        raw.to_request()
    }
    unsafe fn rebuilt(lifted: &mut AnnounceRequest) -> &AnnounceRequest {
        lifted
    }
}

impl Ret for AnnounceResponse {
    type Out = AnnounceResponseOut;
    const EMPTY: AnnounceResponseOut = AnnounceResponseOut::EMPTY;

    fn put(self, out: &mut AnnounceResponseOut) -> Result<(), Fault> {
        out.fill(self);
        Ok(())
    }
    unsafe fn take(out: &mut AnnounceResponseOut) -> Result<Self, Fault> {
        // SAFETY: the plugin filled `out` on success.
        let response = unsafe { out.to_response() };
        if let Some(release) = out.release {
            // SAFETY: handed back exactly once, to the plugin that filled it.
            unsafe { release(out) };
        }
        response
    }
    fn fallback() -> Self {
        AnnounceResponse::default()
    }
}

abi_table! {
    /// One entry per [`Tracker`] method but `url` (the host keeps it), plus open/destroy.
    table TrackerVTable(KIND_TRACKER, "tracker"), complete TrackerFns;
    /// A tracker client living in a plugin library. After a panic the instance is poisoned and
    /// every announce fails with [`TrackerError::Unreachable`] without reaching the plugin.
    host DynTracker: Tracker, Send, Sync;
    plugin [T: TrackerOpen];
    wire [AnnounceRequestRef, PeerAddr, AnnounceResponseOut];
    new open(url: &str) -> TrackerError = T::open(url);
    state String = url.to_string();
    methods {
        fn announce(&self, req: &AnnounceRequest) -> Result<AnnounceResponse, TrackerError>;
    }
    host_only {
        fn url(&self) -> &str {
            &self.state
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_round_trip() {
        let v4: SocketAddr = "127.0.0.1:6881".parse().unwrap();
        let v6 = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 51413, 7, 2));
        for a in [v4, v6] {
            assert_eq!(PeerAddr::new(&a).to_socket_addr(), Some(a));
        }
        let bad = PeerAddr {
            family: 5,
            ..PeerAddr::new(&v4)
        };
        assert_eq!(bad.to_socket_addr(), None);
    }

    #[test]
    fn the_local_address_crosses_and_none_stays_none() {
        let mut req = AnnounceRequest {
            info_hash: [1; 20],
            peer_id: [2; 20],
            port: 6881,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: AnnounceEvent::None,
            num_want: 0,
            key: 0,
            timeout: Duration::from_secs(1),
            local_ip: None,
        };
        for ip in [
            None,
            Some("127.0.0.2".parse().unwrap()),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ] {
            req.local_ip = ip;
            let back = AnnounceRequestRef::new(&req).to_request().unwrap();
            assert_eq!(back.local_ip, ip);
        }
        let mut raw = AnnounceRequestRef::new(&req);
        raw.local_ip.family = 9;
        assert!(raw.to_request().is_err());
    }

    /// The tracker fingerprint of ABI 2 before requests carried a local address: a plugin built
    /// then would not see the field, and would announce from wherever the routing table chose.
    const BEFORE_LOCAL_IP: u64 = 0xe416_319c_6ec6_879a;

    #[test]
    fn a_tracker_plugin_built_before_the_local_address_is_refused() {
        use crate::plugin::LoadFailure;
        use crate::plugin::inspect::check_stamp;
        let refused = check_stamp(
            crate::plugin::abi::descriptor::ABI_VERSION,
            KIND_TRACKER,
            BEFORE_LOCAL_IP,
        );
        assert!(
            matches!(
                refused,
                Err(LoadFailure::Fingerprint {
                    found: BEFORE_LOCAL_IP,
                    ..
                })
            ),
            "{refused:?}"
        );
        assert!(refused.unwrap_err().to_string().contains("rebuild it"));
    }
}
