//! A [`Tracker`] across the boundary: the C table, the plugin-side functions that fill it for any
//! `T: TrackerOpen`, and [`DynTracker`]. An announce is one blocking call: the request goes in as
//! a struct, the response comes back with a peer array and warning the plugin allocated, which
//! the host copies and hands back to the plugin's `free_response`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use super::fault::{Poison, guard};
use super::*;
use crate::plugin::registry::TrackerOpen;
use crate::plugin::{AnnounceEvent, AnnounceRequest, AnnounceResponse, Tracker, TrackerError};

type Status = i32;

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
        })
    }
}

/// One peer: `family` 4 (first 4 bytes of `ip` used) or 6.
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
}

impl AnnounceResponseOut {
    fn empty() -> Self {
        AnnounceResponseOut {
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
        }
    }

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
    }

    /// Copies the response out; the plugin still owns the arrays.
    ///
    /// # Safety
    /// The pointers must be as a successful `announce` left them.
    unsafe fn to_response(&self) -> Result<AnnounceResponse, TrackerError> {
        let peers = if self.peers.is_null() || self.peers_len == 0 {
            Vec::new()
        } else {
            // SAFETY: guaranteed by the caller: the plugin allocated `peers_len` entries.
            unsafe { std::slice::from_raw_parts(self.peers.cast_const(), self.peers_len) }
                .iter()
                .map(|p| {
                    p.to_socket_addr().ok_or_else(|| {
                        TrackerError::BadReply(format!("peer with address family {}", p.family))
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

/// One entry per [`Tracker`] method (the URL stays on the host), plus open/destroy, the free
/// function for responses, and the URL schemes the plugin handles.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TrackerVTable {
    pub open:
        Option<unsafe extern "C" fn(url: RawSlice, out: *mut Handle, err: *mut ErrorOut) -> Status>,
    pub destroy: Option<unsafe extern "C" fn(h: Handle)>,
    pub announce: Option<
        unsafe extern "C" fn(
            h: Handle,
            req: *const AnnounceRequestRef,
            resp: *mut AnnounceResponseOut,
            err: *mut ErrorOut,
        ) -> Status,
    >,
    pub free_response: Option<unsafe extern "C" fn(resp: *mut AnnounceResponseOut)>,
    /// Lower-case URL schemes, e.g. "http".
    pub schemes: *const RawSlice,
    pub schemes_len: usize,
}

// SAFETY: a table in a static points only at functions and immutable static data.
unsafe impl Sync for TrackerVTable {}

impl TrackerVTable {
    /// The table for `T`, instantiated in the plugin crate by [`crate::export_tracker!`].
    pub const fn of<T: TrackerOpen>(schemes: &'static [RawSlice]) -> Self {
        TrackerVTable {
            open: Some(open::<T>),
            destroy: Some(destroy_instance::<T>),
            announce: Some(announce::<T>),
            free_response: Some(free_response),
            schemes: schemes.as_ptr(),
            schemes_len: schemes.len(),
        }
    }

    /// The same table with every entry checked present, or `None` if one is missing.
    pub fn check(&self) -> Option<TrackerFns> {
        Some(TrackerFns {
            open: self.open?,
            destroy: self.destroy?,
            announce: self.announce?,
            free_response: self.free_response?,
        })
    }

    /// The schemes the plugin declares.
    ///
    /// # Safety
    /// `schemes` must be null or valid for `schemes_len` entries, each valid for its length.
    pub unsafe fn schemes(&self) -> Result<Vec<String>, std::str::Utf8Error> {
        if self.schemes.is_null() || self.schemes_len == 0 {
            return Ok(Vec::new());
        }
        // SAFETY: guaranteed by the caller.
        let raw = unsafe { std::slice::from_raw_parts(self.schemes, self.schemes_len) };
        // SAFETY: guaranteed by the caller.
        raw.iter()
            .map(|s| unsafe { s.as_str() }.map(str::to_ascii_lowercase))
            .collect()
    }
}

/// A [`TrackerVTable`] known to be complete.
#[derive(Clone, Copy, Debug)]
pub struct TrackerFns {
    open: unsafe extern "C" fn(RawSlice, *mut Handle, *mut ErrorOut) -> Status,
    destroy: unsafe extern "C" fn(Handle),
    announce: unsafe extern "C" fn(
        Handle,
        *const AnnounceRequestRef,
        *mut AnnounceResponseOut,
        *mut ErrorOut,
    ) -> Status,
    free_response: unsafe extern "C" fn(*mut AnnounceResponseOut),
}

// SAFETY (all entries below): the host passes a handle from `open`, valid structs, and a valid
// ErrorOut.
unsafe extern "C" fn open<T: TrackerOpen>(
    url: RawSlice,
    out: *mut Handle,
    err: *mut ErrorOut,
) -> Status {
    unsafe {
        guard(err, || {
            let url = url
                .as_str()
                .map_err(|_| Fault::invalid("tracker URL is not UTF-8"))?;
            hand_out(out, T::open(url)?)
        })
    }
}

unsafe extern "C" fn announce<T: TrackerOpen>(
    h: Handle,
    req: *const AnnounceRequestRef,
    resp: *mut AnnounceResponseOut,
    err: *mut ErrorOut,
) -> Status {
    unsafe {
        guard(err, || {
            let req = req
                .as_ref()
                .ok_or_else(|| Fault::invalid("null announce request"))?;
            let resp = resp
                .as_mut()
                .ok_or_else(|| Fault::invalid("null announce response"))?;
            let response = instance::<T>(h)?.announce(&req.to_request()?)?;
            resp.fill(response);
            Ok(())
        })
    }
}

unsafe extern "C" fn free_response(resp: *mut AnnounceResponseOut) {
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
    *resp = AnnounceResponseOut::empty();
}

/// A tracker client living in a plugin library. After a panic the instance is poisoned and every
/// announce fails with [`TrackerError::Unreachable`] without reaching the plugin.
pub struct DynTracker {
    fns: TrackerFns,
    handle: Handle,
    poison: Poison,
    name: Arc<str>,
    url: String,
    /// Keeps the code behind `fns` mapped; dropped after `handle` is destroyed.
    _library: Option<Arc<libloading::Library>>,
}

// SAFETY: the handle is a `T: Tracker` (which is `Send + Sync`) created by the plugin, and every
// entry takes it by shared reference, as the trait does.
unsafe impl Send for DynTracker {}
unsafe impl Sync for DynTracker {}

impl DynTracker {
    /// Opens a client for `url` through `fns`; `library` as for
    /// [`super::picker::DynPicker::create`].
    pub fn open(
        fns: TrackerFns,
        name: Arc<str>,
        library: Option<Arc<libloading::Library>>,
        url: &str,
    ) -> Result<Self, TrackerError> {
        let poison = Poison::default();
        let mut handle: Handle = std::ptr::null_mut();
        let raw = RawSlice::borrow(url.as_bytes());
        // SAFETY: complete table; `url` outlives the call.
        poison
            .call(&name, |err| unsafe { (fns.open)(raw, &mut handle, err) })
            .map_err(|f| f.into_tracker_error(&name))?;
        if handle.is_null() {
            return Err(TrackerError::Unreachable(format!(
                "tracker plugin '{name}': open returned no instance"
            )));
        }
        Ok(DynTracker {
            fns,
            handle,
            poison,
            name,
            url: url.to_string(),
            _library: library,
        })
    }

    /// Why this instance was disabled, if a call panicked.
    pub fn poisoned(&self) -> Option<&str> {
        self.poison.reason()
    }
}

impl Tracker for DynTracker {
    fn url(&self) -> &str {
        &self.url
    }

    fn announce(&self, req: &AnnounceRequest) -> Result<AnnounceResponse, TrackerError> {
        let (f, h, req) = (self.fns.announce, self.handle, AnnounceRequestRef::new(req));
        let mut out = AnnounceResponseOut::empty();
        // SAFETY: live handle, complete table, `req` and `out` outlive the call.
        self.poison
            .call(&self.name, |err| unsafe { f(h, &req, &mut out, err) })
            .map_err(|fault| fault.into_tracker_error(&self.name))?;
        // SAFETY: a successful announce filled `out`; it goes back to the plugin exactly once.
        let response = unsafe { out.to_response() };
        unsafe { (self.fns.free_response)(&mut out) };
        response
    }
}

impl Drop for DynTracker {
    fn drop(&mut self) {
        if self.poison.reason().is_none() {
            // SAFETY: the handle is live and never used again.
            unsafe { (self.fns.destroy)(self.handle) };
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
}
