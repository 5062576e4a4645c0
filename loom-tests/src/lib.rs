//! loom models of every concurrent path in `hvcore`.
//!
//! The models live in `tests/` and only build with `RUSTFLAGS="--cfg loom"` (run them with
//! `cargo xtask loom`). Each model has a deliberately broken mutant, selected with
//! `--cfg loom_mutant="..."`, that the model must catch; `MUTANTS` lists them with the model
//! that catches each.
