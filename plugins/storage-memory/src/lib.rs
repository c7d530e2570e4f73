//! storage-memory plugin (to be written).
