//! tracker-http plugin (to be written).
