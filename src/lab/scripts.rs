//! The lab's shell scripts and kernel config fragments, embedded in the
//! binary so that mmuvisor works from any folder, and written out to the
//! cache on use (one folder per content hash: embedded.rs).

use super::LabError;
use std::path::{Path, PathBuf};

const FILES: super::embedded::Files = &[
    (
        "build-lab-kernel.sh",
        include_str!("../../resources/kernels/build-lab-kernel.sh"),
    ),
    (
        "apt-private.sh",
        include_str!("../../resources/kernels/apt-private.sh"),
    ),
    (
        "fetch-stock-kernel.sh",
        include_str!("../../resources/kernels/fetch-stock-kernel.sh"),
    ),
    (
        "build-tree-kernel.sh",
        include_str!("../../resources/kernels/build-tree-kernel.sh"),
    ),
    (
        "build-progress.sh",
        include_str!("../../resources/kernels/build-progress.sh"),
    ),
    (
        "lab.config",
        include_str!("../../resources/kernels/lab.config"),
    ),
    (
        "base.config",
        include_str!("../../resources/kernels/base.config"),
    ),
    (
        "debug.config",
        include_str!("../../resources/kernels/debug.config"),
    ),
    (
        "fetch-assets.sh",
        include_str!("../../resources/lab/fetch-assets.sh"),
    ),
];

/// Writes the embedded scripts into `cache/embedded/scripts-<hash>/` and
/// returns that folder.
pub fn materialize(cache: &Path) -> Result<PathBuf, LabError> {
    super::embedded::write_out(cache, "scripts", FILES, 0o755)
}

/// Runs `script` with `args`, passing its output through, and returns the
/// value of its last `KEY=value` line.
pub fn run_for_value(script: &Path, args: &[String], key: &str) -> Result<PathBuf, LabError> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let name = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut child = Command::new("bash")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::io("cannot run", script, e))?;
    // The script's own complaint (`NAME: why`, from its die()) becomes the
    // error's one line; anything else on its stderr passes through.
    let own = format!("{}: ", name.trim_end_matches(".sh"));
    let errors = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            let mut why = None;
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                match line.strip_prefix(&own) {
                    Some(w) => why = Some(w.to_string()),
                    None => eprintln!("{line}"),
                }
            }
            why
        })
    });
    let mut value = None;
    let prefix = format!("{key}=");
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            match line.strip_prefix(&prefix) {
                Some(v) => value = Some(PathBuf::from(v)),
                None => eprintln!("{line}"),
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| LabError::io("cannot wait for", script, e))?;
    let why = errors.and_then(|t| t.join().ok().flatten());
    match (status.success(), value, why) {
        (true, Some(v), _) => Ok(v),
        (false, _, Some(why)) => Err(LabError::Invalid(why)),
        (ok, _, _) => Err(LabError::Script {
            script: name,
            status: status.code().unwrap_or(-1),
            hint: if ok {
                format!(": it printed no {key}=")
            } else {
                String::new()
            },
        }),
    }
}
