//! The ports a listener tries when its default may be taken by another rivulet: the one wanted,
//! the next eight, then any free one. The peer listener and `serve`'s HTTP server fall back the
//! same way; only a port the user did not name falls back at all (the callers decide).

use std::future::Future;

/// `wanted`, `wanted + 1` ..= `wanted + 8`, then 0 (the system picks).
fn fallback_ports(wanted: u16) -> impl Iterator<Item = u16> {
    (0..=8)
        .filter_map(move |i| wanted.checked_add(i))
        .chain(std::iter::once(0))
}

/// `bind` on port `wanted`; when `may_move` and the port is in use (`in_use` says so of the
/// error), on the fallback ports in turn. What bound comes with the port it was asked for.
pub(super) async fn bind_with_fallback<T, E, Fut>(
    wanted: u16,
    may_move: bool,
    mut bind: impl FnMut(u16) -> Fut,
    in_use: impl Fn(&E) -> bool,
) -> Result<(T, u16), E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut ports = fallback_ports(wanted);
    loop {
        let port = ports.next().unwrap_or(0);
        match bind(port).await {
            Ok(bound) => return Ok((bound, port)),
            Err(e) if may_move && port != 0 && in_use(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wanted_port_then_eight_more_then_any() {
        let p: Vec<u16> = fallback_ports(6881).collect();
        assert_eq!(p, [6881, 6882, 6883, 6884, 6885, 6886, 6887, 6888, 6889, 0]);
        assert_eq!(fallback_ports(65534).collect::<Vec<_>>(), [65534, 65535, 0]);
    }
}
