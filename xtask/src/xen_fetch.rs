//! Xen 4.17 for `cargo xtask xen`: Debian's `xen-hypervisor-4.17-amd64`, fetched with
//! `apt-get download` into `target/xen/`, unpacked with `dpkg-deb -x` and gunzipped to a
//! multiboot ELF ([`xen_image`]). Nothing is installed; a second call finds the image and
//! downloads nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, fail, root, run_status};

/// The Debian package that carries the hypervisor.
pub const XEN_PACKAGE: &str = "xen-hypervisor-4.17-amd64";

/// The uncompressed Xen 4.17 image, fetched and unpacked into `target/xen/` on first use.
pub fn xen_image() -> Result<PathBuf> {
    let dir = root().join("target/xen");
    let image = dir.join("xen-4.17-amd64");
    if is_elf(&image) {
        return Ok(image);
    }
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let deb = match find_deb(&dir) {
        Some(deb) => deb,
        None => download_deb(&dir)?,
    };
    eprintln!("xtask: unpacking {} (not installing it)", deb.display());
    let pkg = dir.join("pkg");
    run_status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&pkg))?;
    let gz = find_hypervisor_gz(&pkg.join("boot"))
        .ok_or_else(|| format!("no boot/xen-4.17*.gz in {}", deb.display()))?;
    let out = Command::new("gunzip")
        .arg("-c")
        .arg(&gz)
        .output()
        .map_err(|e| format!("cannot run gunzip: {e}"))?;
    if !out.status.success() {
        return fail(&format!(
            "gunzip {} failed: {}",
            gz.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    fs::write(&image, &out.stdout).map_err(|e| format!("writing {}: {e}", image.display()))?;
    if !is_elf(&image) {
        return fail(&format!("{} is not an ELF image", image.display()));
    }
    eprintln!("xtask: Xen image {}", image.display());
    Ok(image)
}

fn is_elf(path: &Path) -> bool {
    fs::read(path)
        .map(|b| b.starts_with(b"\x7fELF"))
        .unwrap_or(false)
}

fn find_deb(dir: &Path) -> Option<PathBuf> {
    let mut debs: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            name.starts_with(XEN_PACKAGE) && name.ends_with(".deb")
        })
        .collect();
    debs.sort();
    debs.pop()
}

fn download_deb(dir: &Path) -> Result<PathBuf> {
    eprintln!(
        "xtask: fetching {XEN_PACKAGE} with apt-get download into {}",
        dir.display()
    );
    let get = || {
        Command::new("apt-get")
            .args(["download", "-q", XEN_PACKAGE])
            .current_dir(dir)
            .status()
    };
    let ok = matches!(get(), Ok(s) if s.success());
    if !ok {
        eprintln!("xtask: apt-get download failed; refreshing the package lists (apt-get update)");
        run_status(Command::new("apt-get").args(["update", "-qq"]))
            .map_err(|e| format!("{e}; as root run: apt-get update, then rerun"))?;
        if !matches!(get(), Ok(s) if s.success()) {
            return fail(&format!(
                "apt-get download {XEN_PACKAGE} failed; this needs a Debian bookworm apt source \
                 (the package is in bookworm and bookworm-security)"
            ));
        }
    }
    find_deb(dir).ok_or_else(|| {
        format!(
            "apt-get download left no {XEN_PACKAGE}*.deb in {}",
            dir.display()
        )
    })
}

fn find_hypervisor_gz(boot: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(boot)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            name.starts_with("xen-4.17") && name.ends_with(".gz")
        })
        .collect();
    found.sort();
    found.pop()
}
