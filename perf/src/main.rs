//! Host benchmark harness: `hvcore`'s update path against lock-based baselines.
//!
//! Run it through `cargo xtask perf`. Not yet implemented beyond this entry point.

fn main() {
    eprintln!("perf: the host bench is not built yet (see issue [perf])");
    std::process::exit(2);
}
