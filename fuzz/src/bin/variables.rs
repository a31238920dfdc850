//! The `variables` fuzz target: see `voice_edge_fuzz::variables`. Run with `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| voice_edge_fuzz::variables::run(data));
}
