//! One request/reply exchange with retransmission (BEP 15), within an overall deadline.
//!
//! BEP 15 waits 15 * 2^n s before retransmitting; the base here is scaled down so that several
//! attempts fit the caller's timeout. Datagrams from another address or for another transaction
//! are ignored, as a spoofed or late reply must not end the wait.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rivulet_core::plugin::TrackerError;

use crate::packet;

const BEP15_BASE: Duration = Duration::from_secs(15);
/// Large enough for any reply (IPv4 UDP payload limit).
const MAX_DATAGRAM: usize = 65536;

/// The first wait before retransmitting, for a call allowed `timeout` in all.
pub(crate) fn base_wait(timeout: Duration) -> Duration {
    BEP15_BASE.min(timeout / 4).max(Duration::from_millis(10))
}

pub(crate) struct Exchange<'a> {
    pub(crate) socket: &'a UdpSocket,
    pub(crate) tracker: SocketAddr,
    pub(crate) deadline: Instant,
    pub(crate) base: Duration,
}

impl Exchange<'_> {
    /// Sends `request` (transaction `transaction`) until its reply arrives or time runs out.
    pub(crate) fn run(&self, request: &[u8], transaction: u32) -> Result<Vec<u8>, TrackerError> {
        let mut wait = self.base;
        let mut buf = vec![0; MAX_DATAGRAM];
        loop {
            if Instant::now() >= self.deadline {
                return Err(TrackerError::Timeout);
            }
            self.socket
                .send_to(request, self.tracker)
                .map_err(|e| TrackerError::Unreachable(format!("{}: {e}", self.tracker)))?;
            let until = (Instant::now() + wait).min(self.deadline);
            while let Some(left) = until
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            {
                self.socket
                    .set_read_timeout(Some(left))
                    .map_err(|e| TrackerError::Unreachable(e.to_string()))?;
                match self.socket.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let reply = &buf[..n];
                        if from == self.tracker
                            && packet::transaction_of(reply) == Some(transaction)
                        {
                            return Ok(reply.to_vec());
                        }
                        tracing::debug!(%from, len = n, "ignoring unrelated datagram");
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break;
                    }
                    // An ICMP error queued by an earlier send: keep waiting for a real reply.
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                    Err(e) => {
                        return Err(TrackerError::Unreachable(format!("{}: {e}", self.tracker)));
                    }
                }
            }
            wait = wait.saturating_mul(2);
        }
    }
}
