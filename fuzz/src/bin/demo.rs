//! The `demo` fuzz target: see `voice_edge_fuzz::demo`. Run with `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| voice_edge_fuzz::demo::run(data));
}
