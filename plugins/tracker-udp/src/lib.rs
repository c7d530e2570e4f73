//! tracker-udp plugin (to be written).
