//! The `jwt` fuzz target: see `voice_edge_fuzz::jwt`. Run with `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| voice_edge_fuzz::jwt::run(data));
}
