//! picker-streaming plugin (to be written).
