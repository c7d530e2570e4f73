//! Checks that the tests run in the private network namespace of `tests/run-all.sh`.
//!
//! libtorrent (qBittorrent) starts DHT bootstrap lookups, UPnP/NAT-PMP and multicast peer
//! discovery that cannot all be switched off; inside a namespace holding only `lo` none of it can
//! leave the machine.

/// Network interfaces of this process's network namespace. Read from /proc/self/net/dev, not
/// /sys/class/net: sysfs shows the namespace of whoever mounted it.
pub fn interfaces() -> Vec<String> {
    let Ok(text) = std::fs::read_to_string("/proc/self/net/dev") else {
        return Vec::new();
    };
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .collect();
    names.sort();
    names
}

/// Panics unless the only network interface is `lo`.
pub fn assert_isolated_network() {
    let names = interfaces();
    let others: Vec<&String> = names.iter().filter(|n| *n != "lo").collect();
    assert!(
        others.is_empty(),
        "this test starts libtorrent-based clients and must not see a real network \
         (interfaces here: {names:?}); run the tests through tests/run-all.sh"
    );
}
