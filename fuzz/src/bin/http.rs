//! The `http` fuzz target: see `voice_edge_fuzz::http`. Run with `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| voice_edge_fuzz::http::run(data));
}
