//! The `webhook` fuzz target: see `voice_edge_fuzz::webhook`. Run with `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| voice_edge_fuzz::webhook::run(data));
}
