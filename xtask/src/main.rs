//! `cargo xtask`: build, run and test Argon.
fn main() {}
