//! The `practice_event` fuzz target: see `voice_edge_fuzz::practice`. Run with `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| voice_edge_fuzz::practice::run(data));
}
