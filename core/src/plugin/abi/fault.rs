//! How an error crosses the boundary: status codes, the host-owned [`ErrorOut`] buffer the plugin
//! writes into, the panic guard around every plugin-side entry point, and the poison flag the host
//! keeps per instance.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::plugin::storage::StorageError;
use crate::plugin::tracker::TrackerError;

/// Never sent by a plugin: the host's status for a call it refused to make because the instance
/// panicked earlier.
pub const STATUS_POISONED: i32 = -1;
pub const STATUS_OK: i32 = 0;
/// The plugin's code panicked; the message holds the panic payload.
pub const STATUS_PANIC: i32 = 1;
/// The host passed something the plugin cannot use (a null handle, a malformed bitfield).
pub const STATUS_INVALID_ARGUMENT: i32 = 2;
/// The plugin refused, with a message (e.g. a picker that could not be created).
pub const STATUS_FAILED: i32 = 3;
pub const STATUS_STORAGE_IO: i32 = 10;
pub const STATUS_STORAGE_NO_SPACE: i32 = 11;
pub const STATUS_STORAGE_EVICTED: i32 = 12;
pub const STATUS_STORAGE_OUT_OF_RANGE: i32 = 13;
/// [`StorageError::Other`]: the message is the plugin's own text.
pub const STATUS_STORAGE_OTHER: i32 = 14;
pub const STATUS_STORAGE_MISSING: i32 = 15;
pub const STATUS_TRACKER_FAILURE: i32 = 20;
pub const STATUS_TRACKER_UNREACHABLE: i32 = 21;
pub const STATUS_TRACKER_TIMEOUT: i32 = 22;
pub const STATUS_TRACKER_BAD_REPLY: i32 = 23;
pub const STATUS_TRACKER_UNSUPPORTED: i32 = 24;

/// Bytes of message the host makes room for; longer messages are cut.
pub const MESSAGE_CAPACITY: usize = 1024;

/// Filled by the plugin when a call fails. The host owns `buf`; the plugin writes at most `cap`
/// bytes of message and sets `len`.
#[repr(C)]
#[derive(Debug)]
pub struct ErrorOut {
    pub buf: *mut u8,
    pub cap: usize,
    pub len: usize,
    /// Storage I/O errors: the raw OS error, 0 if the error had none.
    pub os_code: i32,
    /// Storage out-of-range errors: file, offset, length.
    pub detail: [u64; 3],
}

/// One failed call, in the form it crosses the boundary. Storage `Io`/`NoSpace` messages are the
/// path's raw bytes (for `Io` without an OS error code, followed by a NUL and the description).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub status: i32,
    pub message: Vec<u8>,
    pub os_code: i32,
    pub detail: [u64; 3],
}

impl Fault {
    pub fn new(status: i32, message: impl Into<Vec<u8>>) -> Self {
        Fault {
            status,
            message: message.into(),
            os_code: 0,
            detail: [0; 3],
        }
    }

    pub fn invalid(message: &str) -> Self {
        Fault::new(STATUS_INVALID_ARGUMENT, message)
    }

    pub fn failed(message: impl fmt::Display) -> Self {
        Fault::new(STATUS_FAILED, message.to_string())
    }

    pub fn message(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.message)
    }

    /// Whether the instance must not be called again.
    pub fn is_panic(&self) -> bool {
        self.status == STATUS_PANIC || self.status == STATUS_POISONED
    }

    /// Writes this fault into the host's buffer, cutting the message to fit.
    ///
    /// # Safety
    /// `out` must be null or point at an `ErrorOut` whose `buf` is valid for `cap` bytes.
    unsafe fn write_to(&self, out: *mut ErrorOut) {
        // SAFETY: guaranteed by the caller.
        let Some(out) = (unsafe { out.as_mut() }) else {
            return;
        };
        let len = self.message.len().min(out.cap);
        if !out.buf.is_null() {
            // SAFETY: `buf` holds `cap` bytes and `len <= cap`; the regions cannot overlap since
            // the message is ours.
            unsafe { std::ptr::copy_nonoverlapping(self.message.as_ptr(), out.buf, len) };
            out.len = len;
        }
        out.os_code = self.os_code;
        out.detail = self.detail;
    }

    /// Reads what a plugin wrote after returning `status`.
    ///
    /// # Safety
    /// `out.buf` must be valid for `out.cap` bytes, the first `out.len` of them initialised.
    pub unsafe fn read(status: i32, out: &ErrorOut) -> Self {
        let len = out.len.min(out.cap);
        let message = if out.buf.is_null() {
            Vec::new()
        } else {
            // SAFETY: guaranteed by the caller; `len` is clamped to the buffer.
            unsafe { std::slice::from_raw_parts(out.buf, len) }.to_vec()
        };
        Fault {
            status,
            message,
            os_code: out.os_code,
            detail: out.detail,
        }
    }

    /// Rebuilds the storage error a plugin returned; `plugin` ("storage plugin 'x'") names it
    /// when the plugin itself broke.
    pub fn into_storage_error(self, plugin: &str) -> StorageError {
        match self.status {
            STATUS_STORAGE_IO => {
                let (path, description) = match self.message.iter().position(|&b| b == 0) {
                    Some(nul) => (&self.message[..nul], Some(&self.message[nul + 1..])),
                    None => (&self.message[..], None),
                };
                let source = match (self.os_code, description) {
                    (0, Some(d)) => std::io::Error::other(String::from_utf8_lossy(d).into_owned()),
                    (0, None) => std::io::Error::other("I/O error"),
                    (code, _) => std::io::Error::from_raw_os_error(code),
                };
                StorageError::Io {
                    path: PathBuf::from(OsStr::from_bytes(path)),
                    source,
                }
            }
            STATUS_STORAGE_NO_SPACE => StorageError::NoSpace {
                path: PathBuf::from(OsStr::from_bytes(&self.message)),
            },
            STATUS_STORAGE_EVICTED => StorageError::Evicted,
            STATUS_STORAGE_MISSING => StorageError::Missing,
            STATUS_STORAGE_OUT_OF_RANGE => StorageError::OutOfRange {
                file: usize::try_from(self.detail[0]).unwrap_or(usize::MAX),
                offset: self.detail[1],
                len: self.detail[2],
            },
            STATUS_STORAGE_OTHER => StorageError::Other(self.message().into_owned()),
            _ => StorageError::Plugin {
                plugin: plugin.to_string(),
                reason: self.to_string(),
            },
        }
    }

    /// Rebuilds the tracker error a plugin returned. A broken plugin reads as an unreachable
    /// tracker: the engine then treats it like any tracker that stopped answering.
    pub fn into_tracker_error(self, plugin: &str) -> TrackerError {
        let message = self.message().into_owned();
        match self.status {
            STATUS_TRACKER_FAILURE => TrackerError::Failure(message),
            STATUS_TRACKER_UNREACHABLE => TrackerError::Unreachable(message),
            STATUS_TRACKER_TIMEOUT => TrackerError::Timeout,
            STATUS_TRACKER_BAD_REPLY => TrackerError::BadReply(message),
            STATUS_TRACKER_UNSUPPORTED => TrackerError::Unsupported(message),
            _ => TrackerError::Unreachable(format!("{plugin}: {self}")),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            STATUS_PANIC => write!(f, "panicked: {}", self.message()),
            STATUS_POISONED => write!(
                f,
                "instance disabled after an earlier panic ({})",
                self.message()
            ),
            STATUS_INVALID_ARGUMENT => write!(f, "invalid argument: {}", self.message()),
            _ => f.write_str(&self.message()),
        }
    }
}

impl From<StorageError> for Fault {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Io { path, source } => {
                let mut message = path.into_os_string().into_encoded_bytes();
                let os_code = source.raw_os_error().unwrap_or(0);
                if os_code == 0 {
                    message.push(0);
                    message.extend_from_slice(source.to_string().as_bytes());
                }
                Fault {
                    os_code,
                    ..Fault::new(STATUS_STORAGE_IO, message)
                }
            }
            StorageError::NoSpace { path } => Fault::new(
                STATUS_STORAGE_NO_SPACE,
                path.into_os_string().into_encoded_bytes(),
            ),
            StorageError::Evicted => Fault::new(STATUS_STORAGE_EVICTED, ""),
            StorageError::Missing => Fault::new(STATUS_STORAGE_MISSING, ""),
            StorageError::OutOfRange { file, offset, len } => Fault {
                detail: [file as u64, offset, len],
                ..Fault::new(STATUS_STORAGE_OUT_OF_RANGE, "")
            },
            StorageError::Plugin { plugin, reason } => {
                Fault::new(STATUS_STORAGE_OTHER, format!("{plugin}: {reason}"))
            }
            StorageError::Other(m) => Fault::new(STATUS_STORAGE_OTHER, m),
        }
    }
}

impl From<TrackerError> for Fault {
    fn from(e: TrackerError) -> Self {
        match e {
            TrackerError::Failure(m) => Fault::new(STATUS_TRACKER_FAILURE, m),
            TrackerError::Unreachable(m) => Fault::new(STATUS_TRACKER_UNREACHABLE, m),
            TrackerError::Timeout => Fault::new(STATUS_TRACKER_TIMEOUT, ""),
            TrackerError::BadReply(m) => Fault::new(STATUS_TRACKER_BAD_REPLY, m),
            TrackerError::Unsupported(m) => Fault::new(STATUS_TRACKER_UNSUPPORTED, m),
        }
    }
}

/// Plugin side: runs `f`, turning an error or a panic into a status code and a message in `out`.
///
/// # Safety
/// `out` must be null or a valid `ErrorOut` (see [`Fault::write_to`]).
pub(crate) unsafe fn guard(out: *mut ErrorOut, f: impl FnOnce() -> Result<(), Fault>) -> i32 {
    let fault = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return STATUS_OK,
        Ok(Err(fault)) => fault,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic with a non-string payload".to_string());
            // A payload whose Drop panics must not unwind out of an extern "C" function.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            Fault::new(STATUS_PANIC, message)
        }
    };
    // SAFETY: guaranteed by the caller.
    unsafe { fault.write_to(out) };
    fault.status
}

/// Host side: whether an instance panicked, and why. Once set it stays set.
#[derive(Debug, Default)]
pub struct Poison(OnceLock<String>);

impl Poison {
    /// The reason the instance was disabled, if it was.
    pub fn reason(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// Calls into the plugin through `f` unless poisoned, with a fresh error buffer; a panic
    /// reported by the plugin poisons the instance.
    pub fn call(&self, plugin: &str, f: impl FnOnce(*mut ErrorOut) -> i32) -> Result<(), Fault> {
        if let Some(reason) = self.reason() {
            return Err(Fault::new(STATUS_POISONED, reason));
        }
        // Uninitialised: zeroing it would be most of the cost of a cheap call. Only the `len`
        // bytes the plugin reports writing are read.
        let mut buf = [MaybeUninit::<u8>::uninit(); MESSAGE_CAPACITY];
        let mut out = ErrorOut {
            buf: buf.as_mut_ptr().cast::<u8>(),
            cap: buf.len(),
            len: 0,
            os_code: 0,
            detail: [0; 3],
        };
        let status = f(&mut out);
        if status == STATUS_OK {
            return Ok(());
        }
        // SAFETY: `out.buf` is `buf`, `cap` bytes of which the plugin initialised the first `len`.
        let fault = unsafe { Fault::read(status, &out) };
        if fault.is_panic() {
            tracing::error!(plugin, "plugin {fault}; this instance is disabled");
            let _ = self.0.set(fault.message().into_owned());
        }
        Err(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(f: impl FnOnce() -> Result<(), Fault>) -> Result<(), Fault> {
        // SAFETY: the ErrorOut comes from Poison::call and is valid.
        Poison::default().call("test", |out| unsafe { guard(out, f) })
    }

    #[test]
    fn storage_errors_survive_the_boundary() {
        let e = round_trip(|| {
            Err(StorageError::io("/d/f", std::io::Error::from_raw_os_error(28)).into())
        })
        .unwrap_err()
        .into_storage_error("p");
        assert!(matches!(e, StorageError::NoSpace { ref path } if path == &PathBuf::from("/d/f")));

        let e = round_trip(|| Err(StorageError::io("/d/g", std::io::Error::other("boom")).into()))
            .unwrap_err()
            .into_storage_error("p");
        assert_eq!(e.to_string(), "/d/g: boom");

        let e = round_trip(|| {
            Err(StorageError::OutOfRange {
                file: 3,
                offset: 7,
                len: 9,
            }
            .into())
        })
        .unwrap_err()
        .into_storage_error("p");
        assert!(matches!(
            e,
            StorageError::OutOfRange {
                file: 3,
                offset: 7,
                len: 9
            }
        ));

        let e = round_trip(|| Err(StorageError::Missing.into()))
            .unwrap_err()
            .into_storage_error("p");
        assert!(matches!(e, StorageError::Missing), "{e:?}");

        let e = round_trip(|| Err(Fault::invalid("bad")))
            .unwrap_err()
            .into_storage_error("storage plugin 'p'");
        assert_eq!(e.to_string(), "storage plugin 'p': invalid argument: bad");
    }

    #[test]
    fn a_panic_poisons_and_later_calls_do_not_reach_the_plugin() {
        let poison = Poison::default();
        let err = poison
            .call("p", |out| unsafe { guard(out, || panic!("kaboom")) })
            .unwrap_err();
        assert_eq!(err.status, STATUS_PANIC);
        assert_eq!(err.message(), "kaboom");
        let mut called = false;
        let err = poison
            .call("p", |out| {
                called = true;
                unsafe { guard(out, || Ok(())) }
            })
            .unwrap_err();
        assert!(!called);
        assert_eq!(err.status, STATUS_POISONED);
    }

    #[test]
    fn long_messages_are_cut_to_the_buffer() {
        let err = round_trip(|| Err(Fault::failed("x".repeat(5000)))).unwrap_err();
        assert_eq!(err.message.len(), MESSAGE_CAPACITY);
    }
}
