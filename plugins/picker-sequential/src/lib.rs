//! picker-sequential plugin (to be written).
