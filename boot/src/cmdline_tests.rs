//! Host tests of `cmdline`.
use super::*;

fn warnings(w: &Warnings<'_>) -> Vec<String> {
    w.iter().map(|w| w.to_string()).collect()
}

#[test]
fn path_only_gives_defaults() {
    for line in ["", "   ", "/boot/argon", " /boot/argon \t "] {
        let (o, w) = parse(line);
        assert_eq!(o, Options::DEFAULT, "{line:?}");
        assert!(w.is_empty() && w.dropped() == 0, "{line:?}");
    }
    assert_eq!(split_path("\t/k  a b"), ("/k", "  a b"));
    assert_eq!(tokens(" a\tb  c\n").collect::<Vec<_>>(), ["a", "b", "c"]);
}

#[test]
fn the_path_is_not_an_option() {
    // The first token is skipped even when it looks like an option.
    let (o, w) = parse("nodelay smp=2");
    assert_eq!((o.nodelay, o.max_cpus), (false, Some(2)));
    assert!(w.is_empty());
}

#[test]
fn every_known_option() {
    let (o, w) = parse(
        "/k console=com1 loglvl=all/all dom0_max_vcpus=4 dom0_mem=512M maxcpus=3 \
         argon.test=tlb-shootdown argon.bench=ipi apic=xapic nodelay no-linear-pt",
    );
    assert!(w.is_empty(), "{:?}", warnings(&w));
    assert_eq!(o.console, Console::Com1);
    assert_eq!(o.loglvl, LogLevel::All);
    assert_eq!(
        (o.dom0_max_vcpus, o.dom0_mem, o.max_cpus),
        (Some(4), Some(512 << 20), Some(3))
    );
    assert_eq!(
        o.test.map(|t| t.as_str().to_owned()).as_deref(),
        Some("tlb-shootdown")
    );
    assert_eq!(o.bench.map(|t| t.as_str().to_owned()).as_deref(), Some("ipi"));
    assert_eq!(
        (o.apic, o.nodelay, o.linear_pt),
        (ApicMode::Xapic, true, false)
    );
    let (o, _) = parse("/k loglvl=debug/error smp=0x10 apic=x2apic pv-linear-pt=off");
    assert_eq!((o.loglvl, o.max_cpus), (LogLevel::Debug, Some(16)));
    assert_eq!((o.apic, o.linear_pt), (ApicMode::X2apic, false));
}

#[test]
fn booleans_use_xen_spellings_and_the_last_wins() {
    for (line, want) in [
        ("nodelay", true),
        ("no-nodelay", false),
        ("nodelay=yes", true),
        ("nodelay=on nodelay=0", false),
        ("nodelay=disable nodelay=enable", true),
        ("no-nodelay nodelay=true", true),
    ] {
        let (o, w) = parse_args(line);
        assert_eq!(o.nodelay, want, "{line}");
        assert!(w.is_empty(), "{line}");
    }
}

#[test]
fn bad_values_warn_and_keep_the_default() {
    let (o, w) = parse_args(
        "dom0_mem=12Q smp=0 maxcpus=4294967296 loglvl=loud loglvl=all/bogus loglvl \
         console=vga console= nodelay=maybe no-nodelay=1 apic=x3apic dom0_max_vcpus=1-4 \
         argon.test=0123456789abcdef0123456789abcdefX argon.test=",
    );
    assert_eq!(o, Options::DEFAULT);
    assert_eq!(w.len(), 14);
    let w = warnings(&w);
    assert_eq!(w[0], "bad value '12Q' for option 'dom0_mem'");
    assert_eq!(w[5], "missing value for option 'loglvl'");
    assert_eq!(w[6], "unsupported value 'vga' for option 'console'");
    assert_eq!(w[9], "bad value '1' for option 'no-nodelay'");
}

#[test]
fn unknown_options_are_listed_then_counted() {
    let (o, w) = parse_args("no-smp foo=1 bar");
    assert_eq!(o, Options::DEFAULT);
    assert_eq!(
        warnings(&w),
        [
            "unknown option 'no-smp'",
            "unknown option 'foo'",
            "unknown option 'bar'"
        ]
    );
    let many: String = (0..20).map(|i| format!("x{i} ")).collect();
    let (_, w) = parse_args(&many);
    assert_eq!((w.len(), w.dropped()), (MAX_WARNINGS, 4));
    assert_eq!(w.iter().last(), Some(&Warning::Unknown { key: "x15" }));
}

#[test]
fn numbers_and_sizes() {
    use ValueError::*;
    for (s, want) in [
        ("0", Ok(0)),
        ("42", Ok(42)),
        ("0x2A", Ok(42)),
        ("0X2a", Ok(42)),
        ("", Err(Empty)),
        ("0x", Err(InvalidDigit)),
        ("-1", Err(InvalidDigit)),
        ("4k", Err(InvalidDigit)),
        ("18446744073709551615", Ok(u64::MAX)),
        ("18446744073709551616", Err(Overflow)),
    ] {
        assert_eq!(parse_number(s), want, "{s:?}");
    }
    for (s, want) in [
        ("4096", Ok(4 << 20)),
        ("4096b", Ok(4096)),
        ("1k", Ok(1024)),
        ("1K", Ok(1024)),
        ("0x10M", Ok(16 << 20)),
        ("2g", Ok(2 << 30)),
        ("1T", Ok(1 << 40)),
        ("0x1b", Ok(0x1b << 10)),
        ("16777215T", Ok(16_777_215 << 40)),
        ("16777216T", Err(Overflow)),
        ("18014398509481984", Err(Overflow)),
        ("", Err(Empty)),
        ("M", Err(InvalidDigit)),
        ("12Q", Err(BadSuffix)),
        ("1KB", Err(BadSuffix)),
    ] {
        assert_eq!(parse_size(s), want, "{s:?}");
    }
}

#[test]
fn module_options_and_guest_args() {
    let line = "dom0.bin vcpus=2 root=/dev/xvda mem=64M  console=hvc0 -- mem=1G vcpus=9";
    let (m, w) = parse_module(line);
    assert!(w.is_empty());
    assert_eq!(
        (m.path, m.vcpus, m.mem),
        ("dom0.bin", Some(2), Some(64 << 20))
    );
    let args: Vec<_> = m.guest_args().collect();
    assert_eq!(
        args,
        ["root=/dev/xvda", "console=hvc0", "mem=1G", "vcpus=9"]
    );
    let mut buf = [0u8; 64];
    let n = m.write_guest_args(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"root=/dev/xvda console=hvc0 mem=1G vcpus=9");
    assert_eq!(
        m.write_guest_args(&mut buf[..n - 1]),
        Err(GuestArgsTooLong { needed: n })
    );

    let (m, w) = parse_module("b.bin vcpus=0 mem=lots vcpus arg");
    assert_eq!((m.path, m.vcpus, m.mem), ("b.bin", None, None));
    assert_eq!(warnings(&w)[2], "missing value for option 'vcpus'");
    assert_eq!(m.guest_args().collect::<Vec<_>>(), ["arg"]);
    let (m, w) = parse_module("a.bin");
    assert!(w.is_empty() && m.guest_args().next().is_none());
    assert_eq!(m.write_guest_args(&mut []), Ok(0));
}
