//! Prerequisites: installs what a fresh machine lacks and says what it did.
//!
//! - the `x86_64-unknown-none` Rust target, through rustup;
//! - QEMU ≥ 8.1 (x2APIC under TCG), through apt. On Debian bookworm, whose QEMU is 7.2, it adds
//!   the bookworm-backports suite, reusing the mirror URI already in the system's apt sources.
//!
//! Where it cannot install (not root, not Debian), it stops with the exact command to run.

use std::fs;
use std::process::Command;

use crate::{Result, fail, run_status};

/// The oldest QEMU with x2APIC under TCG.
const MIN_QEMU: (u32, u32) = (8, 1);

pub fn ensure_all() -> Result<()> {
    ensure_target()?;
    ensure_qemu()
}

pub fn ensure_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match out {
        Ok(o)
            if String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == "x86_64-unknown-none") =>
        {
            Ok(())
        }
        Ok(_) => {
            eprintln!("xtask: installing the Rust target x86_64-unknown-none (rustup target add)");
            run_status(Command::new("rustup").args(["target", "add", "x86_64-unknown-none"]))
        }
        Err(_) => {
            fail("rustup not found; install the target with: rustup target add x86_64-unknown-none")
        }
    }
}

/// The installed QEMU version, if any.
pub fn qemu_version() -> Option<(u32, u32, u32)> {
    let out = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .ok()?;
    parse_qemu_version(&String::from_utf8_lossy(&out.stdout))
}

/// Parses "QEMU emulator version 10.0.2 (Debian ...)".
pub fn parse_qemu_version(text: &str) -> Option<(u32, u32, u32)> {
    let rest = text.split("version ").nth(1)?;
    let ver = rest.split_whitespace().next()?;
    let mut parts = ver.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

fn ensure_qemu() -> Result<()> {
    match qemu_version() {
        Some(v) if (v.0, v.1) >= MIN_QEMU => return Ok(()),
        Some(v) => eprintln!(
            "xtask: QEMU {}.{}.{} is too old (need >= {}.{} for x2APIC under TCG)",
            v.0, v.1, v.2, MIN_QEMU.0, MIN_QEMU.1
        ),
        None => eprintln!("xtask: qemu-system-x86_64 not found"),
    }
    let os = fs::read_to_string("/etc/os-release").unwrap_or_default();
    let codename = os_field(&os, "VERSION_CODENAME");
    let is_debian = os_field(&os, "ID").as_deref() == Some("debian");
    let backports = codename.as_deref() == Some("bookworm");
    let install = if backports {
        "apt-get install -y -t bookworm-backports qemu-system-x86"
    } else {
        "apt-get install -y qemu-system-x86"
    };
    if !is_debian {
        return fail(&format!(
            "cannot install QEMU here (not Debian). Install QEMU >= {}.{} with your package manager \
             (the package providing qemu-system-x86_64 and qboot.rom), then rerun.",
            MIN_QEMU.0, MIN_QEMU.1
        ));
    }
    if !is_root() {
        let mut cmd = String::new();
        if backports {
            cmd.push_str(&format!(
                "sudo tee {BACKPORTS_FILE} <<'EOF'\n{}EOF\n",
                backports_entry()?
            ));
        }
        cmd.push_str(&format!("sudo apt-get update && sudo {install}"));
        return fail(&format!(
            "QEMU >= 8.1 is needed and this user cannot install it. Run:\n{cmd}"
        ));
    }
    if backports {
        let entry = backports_entry()?;
        eprintln!("xtask: adding bookworm-backports to apt ({BACKPORTS_FILE})");
        fs::write(BACKPORTS_FILE, entry).map_err(|e| format!("writing {BACKPORTS_FILE}: {e}"))?;
    }
    eprintln!("xtask: installing QEMU: apt-get update && {install}");
    run_status(Command::new("apt-get").args(["update", "-qq"]))?;
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!("DEBIAN_FRONTEND=noninteractive {install} -qq >/dev/null"),
    ]);
    run_status(&mut cmd)?;
    match qemu_version() {
        Some(v) if (v.0, v.1) >= MIN_QEMU => {
            eprintln!("xtask: QEMU {}.{}.{} installed", v.0, v.1, v.2);
            Ok(())
        }
        _ => fail("QEMU was installed but is still missing or too old"),
    }
}

const BACKPORTS_FILE: &str = "/etc/apt/sources.list.d/argon-backports.sources";

/// A deb822 entry for bookworm-backports that reuses the system's own Debian mirror URI.
fn backports_entry() -> Result<String> {
    let uri = debian_mirror_uri().ok_or_else(|| {
        "no Debian mirror URI found in /etc/apt/sources.list or sources.list.d; \
         add bookworm-backports by hand"
            .to_string()
    })?;
    Ok(format!(
        "Types: deb\nURIs: {uri}\nSuites: bookworm-backports\nComponents: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    ))
}

/// The first URI in the apt sources that serves the `bookworm` suite (not security).
fn debian_mirror_uri() -> Option<String> {
    let mut texts = vec![fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        for e in dir.flatten() {
            let p = e.path();
            let name = p.to_string_lossy().to_string();
            if (name.ends_with(".sources") || name.ends_with(".list"))
                && !name.ends_with(BACKPORTS_FILE)
            {
                texts.push(fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    texts.iter().find_map(|t| mirror_from_sources(t))
}

/// Finds the mirror URI for the plain `bookworm` suite in one sources file (deb822 or one-line).
pub fn mirror_from_sources(text: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let field = |k: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
        };
        if let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) {
            if suites.split_whitespace().any(|s| s == "bookworm") {
                return uris.split_whitespace().next().map(str::to_string);
            }
        }
    }
    text.lines().find_map(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        let i = words.iter().position(|w| w.contains("://"))?;
        (words.first() == Some(&"deb") && words.get(i + 1) == Some(&"bookworm"))
            .then(|| words[i].to_string())
    })
}

fn os_field(os: &str, key: &str) -> Option<String> {
    os.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim_matches('"').to_string())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qemu_versions() {
        assert_eq!(
            parse_qemu_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds)\n"),
            Some((10, 0, 2))
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 7.2"),
            Some((7, 2, 0))
        );
        assert_eq!(parse_qemu_version("nonsense"), None);
    }

    #[test]
    fn finds_mirror_in_deb822_and_one_line_sources() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\n\
                      Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            mirror_from_sources(deb822).as_deref(),
            Some("http://mirror.example/debian")
        );
        let line = "deb [arch=amd64] http://m.example/debian bookworm main\n";
        assert_eq!(
            mirror_from_sources(line).as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(
            mirror_from_sources("deb http://x/y bookworm-security main"),
            None
        );
    }
}
