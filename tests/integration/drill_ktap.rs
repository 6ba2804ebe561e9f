//! `mmuvisor drill` end to end: KTAP shape, exit codes, a drill that must
//! fail (simulated secondary MMU that ignores invalidations), and the
//! no-module drills on this host's /dev/kvm.

use std::process::Command;

use crate::run_util::mmuvisor_text as mmuvisor;

/// Checks KTAP v1 shape; returns (number, ok, name, directive) per result.
fn parse_ktap(s: &str) -> Vec<(usize, bool, String, String)> {
    let mut lines = s.lines();
    assert_eq!(lines.next(), Some("KTAP version 1"), "{s}");
    let plan = lines.next().unwrap_or_default();
    let n: usize = plan
        .strip_prefix("1..")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad plan {plan:?}"));
    let mut res = Vec::new();
    for l in lines {
        if l.starts_with("# ") {
            continue;
        }
        let (ok, rest) = if let Some(r) = l.strip_prefix("not ok ") {
            (false, r)
        } else if let Some(r) = l.strip_prefix("ok ") {
            (true, r)
        } else {
            panic!("not a KTAP line: {l:?}")
        };
        let (num, rest) = rest.split_once(' ').unwrap_or_else(|| panic!("{l:?}"));
        let (name, dir) = rest.split_once(" # ").unwrap_or((rest, ""));
        res.push((
            num.parse().unwrap_or(0),
            ok,
            name.to_string(),
            dir.to_string(),
        ));
    }
    assert_eq!(res.len(), n, "plan says {n} results: {s}");
    for (i, r) in res.iter().enumerate() {
        assert_eq!(r.0, i + 1);
    }
    res
}

#[test]
fn stale_secondary_mmu_drill_fails_with_diagnostics() {
    let (rc, out, _) = mmuvisor(&["drill", "--format", "ktap", "selftest-stale-dontneed"]);
    let r = parse_ktap(&out);
    assert_eq!(rc, 1, "{out}");
    assert!(!r[0].1, "{out}");
    assert!(
        out.contains("KVM kept a stale mapping of the dropped page"),
        "{out}"
    );
    assert!(out.contains("KVM saw no invalidation"), "{out}");
    assert!(
        out.contains("the write went through a stale mapping"),
        "{out}"
    );
    // Without a trace, even a correct simulated MMU is "not ok": the
    // tracepoint is required, not sufficient.
    let (rc, out, _) = mmuvisor(&["drill", "--format", "ktap", "selftest-sim-dontneed"]);
    assert_eq!(rc, 1, "{out}");
    assert!(
        out.contains("# selftest-sim-dontneed: kvm-invalidated:") && !out.contains("stale mapping"),
        "{out}"
    );
}

#[test]
fn json_and_timeline_outputs() {
    let dir = std::env::temp_dir().join(format!("mmuvisor-drill-tl-{}", std::process::id()));
    let (rc, out, _) = mmuvisor(&[
        "drill",
        "--format",
        "json",
        "--timeline",
        dir.to_str().unwrap_or("/tmp/x"),
        "selftest-stale-dontneed",
    ]);
    assert_eq!(rc, 1);
    assert!(
        out.starts_with("{\"kernel\":{\"release\":")
            && out.contains("\"drills\":[{\"name\":\"selftest-stale-dontneed\""),
        "{out}"
    );
    assert!(
        out.contains("\"result\":\"fail\"") && out.contains("\"fail\":1"),
        "{out}"
    );
    let svg =
        std::fs::read_to_string(dir.join("selftest-stale-dontneed.svg")).expect("timeline svg");
    assert!(svg.starts_with("<svg") && svg.contains("MADV_DONTNEED") && svg.contains("vCPU 0"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_input_is_one_line_exit_2() {
    let (rc, _, err) = mmuvisor(&["drill", "no-such-drill"]);
    assert_eq!(rc, 2);
    assert!(
        err.starts_with("mmuvisor: error: unknown drill 'no-such-drill'")
            && err.lines().count() == 1,
        "{err}"
    );
    let (rc, out, _) = mmuvisor(&["drill", "--list"]);
    assert_eq!(rc, 0);
    assert!(
        out.contains("exclusive-basic") && out.contains("dontneed") && !out.contains("selftest")
    );
}

/// The drills that need no module, on this host's /dev/kvm.
#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn no_module_drills_on_host_kvm() {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        eprintln!("SKIP: no usable /dev/kvm");
        return;
    }
    if !mmuvisor::secondary_mmu::has_event(mmuvisor::secondary_mmu::UNMAP_EVENT) {
        eprintln!("SKIP: no tracefs with kvm:kvm_unmap_hva_range");
        return;
    }
    let names = [
        "dontneed",
        "mprotect",
        "fork-cow",
        "thp-collapse",
        "ksm-merge",
    ];
    let mut args = vec!["drill", "--format", "ktap", "--vcpus", "2", "--pages", "6"];
    args.extend(names);
    let (rc, out, err) = mmuvisor(&args);
    eprintln!("{out}{err}");
    let r = parse_ktap(&out);
    assert_eq!(r.len(), names.len());
    for (_, ok, name, dir) in &r {
        assert!(*ok, "{name} failed:\n{out}");
        // Environment skips (THP, KSM) are allowed; a missing VMM or payload is not.
        assert!(
            !dir.contains("no VMM") && !dir.contains("no interp"),
            "{name}: {dir}"
        );
    }
    assert!(rc == 0, "exit {rc}\n{out}");
    assert!(
        r.iter().any(|(_, _, n, d)| n == "dontneed" && d.is_empty()),
        "dontneed must run and pass here:\n{out}"
    );
}

#[test]
fn list_honours_names() {
    let (rc, out, _) = mmuvisor(&["drill", "--list", "selftest-stale-dontneed"]);
    assert_eq!(rc, 0, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("selftest-stale-dontneed"), "{out}");
    let (rc, _, err) = mmuvisor(&["drill", "--list", "no-such-drill"]);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("unknown drill 'no-such-drill'"), "{err}");
}

#[test]
fn a_hung_drill_times_out_and_results_stream() {
    use std::io::{BufRead, BufReader};
    use std::time::Instant;
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmuvisor"))
        .args(["drill", "--format", "ktap", "--timeout", "2"])
        .args(["selftest-hang", "selftest-hang", "selftest-stale-dontneed"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run mmuvisor");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut first_result_at = None;
    let mut text = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read stdout");
        if first_result_at.is_none() && line.starts_with("not ok 1 ") {
            first_result_at = Some(t0.elapsed());
        }
        text.push_str(&line);
        text.push('\n');
    }
    let rc = child.wait().expect("wait").code();
    let total = t0.elapsed();
    assert_eq!(rc, Some(1), "{text}");
    assert!(
        text.contains("not ok 1 selftest-hang # TIMEOUT 2 seconds"),
        "{text}"
    );
    assert!(
        text.contains("not ok 2 selftest-hang # TIMEOUT 2 seconds"),
        "{text}"
    );
    assert!(text.contains("not ok 3 selftest-stale-dontneed"), "{text}");
    // Streamed: the first result came out while the second drill still ran.
    let first = first_result_at.expect("first result line");
    assert!(
        first + std::time::Duration::from_millis(1500) < total,
        "first result at {first:?}, end at {total:?}: not streamed"
    );
    let parsed = mmuvisor::drill::report::ktap::parse(&text);
    assert_eq!(parsed.len(), 3, "{text}");
    assert_eq!(parsed[0].name, "selftest-hang");
}
