//! The Spin-compatible host (being written).
