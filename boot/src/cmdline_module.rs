//! A boot module's command line (`<path> [vcpus=<n>] [mem=<size>] <guest arguments>`): the
//! options Argon takes from it and the rest, which belongs to the guest. Same token grammar and
//! warning rules as the hypervisor's own command line (`cmdline`).

use core::str::SplitAsciiWhitespace;

use super::{Warning, Warnings, count, set, size, split_option, split_path, tokens};

/// A boot module's command line: `<path> [vcpus=<n>] [mem=<size>] <guest arguments>`.
///
/// `vcpus=` and `mem=` are taken wherever they appear before a `--` token; everything else, and
/// everything after `--` (so a guest can still receive its own `mem=`), belongs to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleCmdline<'a> {
    pub path: &'a str,
    pub vcpus: Option<u32>,
    /// Bytes.
    pub mem: Option<u64>,
    rest: &'a str,
}

fn is_module_option(token: &str) -> bool {
    matches!(split_option(token).0, "vcpus" | "mem")
}

/// Parses a module command line; bad `vcpus=`/`mem=` values warn and stay `None`.
pub fn parse_module(cmdline: &str) -> (ModuleCmdline<'_>, Warnings<'_>) {
    let (path, rest) = split_path(cmdline);
    let mut m = ModuleCmdline {
        path,
        vcpus: None,
        mem: None,
        rest,
    };
    let mut w = Warnings::new();
    let options = tokens(rest)
        .take_while(|t| *t != "--")
        .filter(|t| is_module_option(t));
    for (key, v) in options.map(split_option) {
        let bad = Warning::BadValue {
            key,
            value: v.unwrap_or(""),
        };
        match key {
            "vcpus" => set(&mut m.vcpus, count(v), bad, &mut w),
            _ => set(&mut m.mem, size(v), bad, &mut w),
        }
    }
    (m, w)
}

/// The guest's argument string did not fit the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestArgsTooLong {
    pub needed: usize,
}

impl<'a> ModuleCmdline<'a> {
    /// The guest's arguments, in order, without `vcpus=`/`mem=` and the first `--`.
    pub fn guest_args(&self) -> GuestArgs<'a> {
        GuestArgs {
            tokens: tokens(self.rest),
            after_separator: false,
        }
    }

    /// Writes the guest's arguments joined by single spaces (no NUL); returns the length.
    pub fn write_guest_args(&self, buf: &mut [u8]) -> Result<usize, GuestArgsTooLong> {
        let needed = self
            .guest_args()
            .map(|t| t.len() + 1)
            .sum::<usize>()
            .saturating_sub(1);
        let out = buf.get_mut(..needed).ok_or(GuestArgsTooLong { needed })?;
        let joined = self.guest_args().enumerate().flat_map(|(i, t)| {
            let sep: &[u8] = if i == 0 { b"" } else { b" " };
            sep.iter().chain(t.as_bytes())
        });
        for (dst, src) in out.iter_mut().zip(joined) {
            *dst = *src;
        }
        Ok(needed)
    }
}

/// Iterator over a module's guest arguments; see [`ModuleCmdline::guest_args`].
#[derive(Clone, Debug)]
pub struct GuestArgs<'a> {
    tokens: SplitAsciiWhitespace<'a>,
    after_separator: bool,
}

impl<'a> Iterator for GuestArgs<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let token = self.tokens.next()?;
            if self.after_separator {
                return Some(token);
            } else if token == "--" {
                self.after_separator = true;
            } else if !is_module_option(token) {
                return Some(token);
            }
        }
    }
}
