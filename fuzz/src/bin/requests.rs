//! The `requests` fuzz target: see `voice_edge_fuzz::requests`. Run with `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| voice_edge_fuzz::requests::run(data));
}
