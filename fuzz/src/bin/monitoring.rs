//! The `monitoring` fuzz target: see `voice_edge_fuzz::monitoring`. Run with `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| voice_edge_fuzz::monitoring::run(data));
}
