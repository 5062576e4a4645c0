//! Argon, the hypervisor binary: wires `hvcore` to the machine.
//!
//! On the bare-metal target this is the image QEMU boots; on the host it builds as a stub so that
//! `cargo test` over the workspace works.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
#[macro_use]
mod console;
#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod cpu;
#[cfg(target_os = "none")]
mod domain;
#[cfg(target_os = "none")]
mod kmain;
#[cfg(target_os = "none")]
mod mem;
#[cfg(target_os = "none")]
mod pv;
#[cfg(target_os = "none")]
mod selftest;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("argon is a bare-metal image; boot it with `cargo xtask run`");
}
