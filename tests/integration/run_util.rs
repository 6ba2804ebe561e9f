//! Helpers for the `run_*` tests: KVM availability, the test payload built
//! from asm/multi.S, and running the mmuvisor binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Why KVM tests cannot run here, if they cannot.
pub fn kvm_skip_reason() -> Option<String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/kvm not usable: {e}")),
    }
}

/// Returns from the test (printing why) when /dev/kvm or the payload is missing.
#[macro_export]
macro_rules! require_kvm_payload {
    () => {{
        if let Some(why) = $crate::run_util::kvm_skip_reason() {
            eprintln!("SKIP: {why}");
            return;
        }
        match $crate::run_util::payload() {
            Ok(p) => p,
            Err(why) => {
                eprintln!("SKIP: cannot build the test payload: {why}");
                return;
            }
        }
    }};
}

/// Builds asm/multi.S once into a temp dir (a static, non-PIE ELF at 1 MiB).
pub fn payload() -> Result<&'static Path, String> {
    static ELF: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ELF.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/asm/multi.S");
        let dir = std::env::temp_dir().join(format!("mmuvisor-it-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = dir.join("multi.elf");
        let st = Command::new("gcc")
            .args([
                "-nostdlib",
                "-static",
                "-no-pie",
                "-Wl,-Ttext-segment=0x100000",
                "-Wl,-z,noseparate-code",
                "-Wl,--build-id=none",
                "-o",
            ])
            .arg(&out)
            .arg(&src)
            .output()
            .map_err(|e| format!("gcc: {e}"))?;
        if !st.status.success() {
            return Err(String::from_utf8_lossy(&st.stderr).into_owned());
        }
        Ok(out)
    })
    .as_ref()
    .map(|p| p.as_path())
    .map_err(|e| e.clone())
}

/// Runs `mmuvisor ARGS`.
pub fn mmuvisor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmuvisor"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("cannot run the mmuvisor binary")
}

/// Runs the test payload with `extra` arguments (a 10 s timeout guards every run).
pub fn run_payload(elf: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", "--payload", elf.to_str().unwrap(), "--timeout", "10"];
    args.extend_from_slice(extra);
    mmuvisor(&args)
}

/// Runs `mmuvisor ARGS`: (exit status, stdout, stderr).
pub fn mmuvisor_text(args: &[&str]) -> (i32, String, String) {
    let out = mmuvisor(args);
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
