//! Bad input: one line on stderr naming the problem, exit code 2.

use crate::run_util::{kvm_skip_reason, mmuvisor, payload, stderr};

fn one_line_error(args: &[&str], needle: &str) {
    let o = mmuvisor(args);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{args:?}: {e}");
    assert!(e.contains(needle), "{args:?}: expected '{needle}' in: {e}");
}

/// Errors clap reports itself: exit 2, the first line names the problem.
fn clap_error(args: &[&str], needle: &str) {
    let o = mmuvisor(args);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
    assert!(
        e.lines().next().unwrap_or("").contains(needle),
        "{args:?}: {e}"
    );
}

#[test]
fn clap_rejects_bad_combinations() {
    clap_error(&["run"], "required");
    clap_error(
        &["run", "--payload", "x", "--kernel", "y"],
        "cannot be used with",
    );
    clap_error(
        &["run", "--payload", "x", "--thp", "maybe"],
        "invalid value",
    );
}

#[test]
fn missing_files() {
    one_line_error(
        &["run", "--payload", "/nonexistent/x.elf"],
        "cannot read payload",
    );
    one_line_error(
        &["run", "--kernel", "/nonexistent/bzImage"],
        "cannot read kernel",
    );
    one_line_error(&["run", "--payload", "no-such-builtin"], "no payload named");
}

#[test]
fn a_bare_payload_name_never_loads_a_file_of_that_name() {
    // A file named like a built-in, in the current folder, is not loaded:
    // `--payload hello` is the built-in, `./hello` would be the file.
    let dir = std::env::temp_dir().join(format!("mmuvisor-payload-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("no-such-builtin"), b"not an elf").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mmuvisor"))
        .args(["run", "--payload", "no-such-builtin"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no payload named") && err.contains("write ./no-such-builtin"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn not_an_elf() {
    if kvm_skip_reason().is_some() {
        // Validation runs after /dev/kvm is opened; without KVM the error is about KVM.
        one_line_error(&["run", "--payload", "/etc/hostname"], "error");
        return;
    }
    one_line_error(&["run", "--payload", "/etc/hostname"], "not an ELF");
    one_line_error(&["run", "--kernel", "/etc/hostname"], "error");
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn bad_vcpus_and_memory() {
    let Some(why) = kvm_skip_reason().or_else(|| payload().err()) else {
        let elf = payload().unwrap().to_str().unwrap();
        one_line_error(&["run", "--payload", elf, "--vcpus", "0"], "at least 1");
        one_line_error(
            &["run", "--payload", elf, "--vcpus", "33"],
            "payload stacks",
        );
        one_line_error(
            &["run", "--payload", elf, "--vcpus", "100000"],
            "KVM_CAP_MAX_VCPUS",
        );
        one_line_error(
            &["run", "--payload", elf, "--mem", "8M"],
            "minimum of 16 MiB",
        );
        clap_error(&["run", "--payload", elf, "--mem", "12X"], "needs a unit");
        clap_error(&["run", "--payload", elf, "--mem", "4096"], "needs a unit");
        clap_error(&["run", "--payload", elf, "--mem", "xM"], "not a size");
        one_line_error(
            &[
                "run",
                "--payload",
                elf,
                "--arg",
                "1",
                "--arg",
                "2",
                "--arg",
                "3",
                "--arg",
                "4",
                "--arg",
                "5",
            ],
            "at most 4",
        );
        return;
    };
    eprintln!("SKIP: {why}");
}
