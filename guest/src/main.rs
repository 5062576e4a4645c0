//! The PV test kernel: conformance suites and workloads that boot on Argon and on Xen 4.17.
//!
//! It is a bare-metal binary for `x86_64-unknown-none`; on the host it only builds as a stub so
//! that `cargo test` over the workspace works.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("guest is a PV kernel image; build it with `cargo xtask build`");
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
