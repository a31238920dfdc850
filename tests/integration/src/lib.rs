//! Integration tests live in `tests/`; see the crate description.
