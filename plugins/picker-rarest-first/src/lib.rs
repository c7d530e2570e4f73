//! picker-rarest-first plugin (to be written).
