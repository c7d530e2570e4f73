//! storage-mmap plugin (to be written).
