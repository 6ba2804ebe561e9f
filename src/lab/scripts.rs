//! The lab's shell scripts and kernel config fragments, embedded in the
//! binary so that mmuvisor works from any folder, and written out to the
//! cache on use (one folder per content hash).

use super::LabError;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const FILES: &[(&str, &str)] = &[
    (
        "build-lab-kernel.sh",
        include_str!("../../resources/kernels/build-lab-kernel.sh"),
    ),
    (
        "apt-private.sh",
        include_str!("../../resources/kernels/apt-private.sh"),
    ),
    (
        "lab.config",
        include_str!("../../resources/kernels/lab.config"),
    ),
    (
        "trim.config",
        include_str!("../../resources/kernels/trim.config"),
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

/// Writes the embedded scripts into `cache/scripts/<hash>/` and returns it.
pub fn materialize(cache: &Path) -> Result<PathBuf, LabError> {
    let mut hasher = DefaultHasher::new();
    FILES.hash(&mut hasher);
    let dir = cache
        .join("scripts")
        .join(format!("{:016x}", hasher.finish()));
    if dir.join(".done").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| LabError::io("cannot create", &dir, e))?;
    for (name, text) in FILES {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| LabError::io("cannot write", &path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| LabError::io("cannot chmod", &path, e))?;
    }
    let done = dir.join(".done");
    std::fs::write(&done, b"").map_err(|e| LabError::io("cannot write", &done, e))?;
    Ok(dir)
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
        .spawn()
        .map_err(|e| LabError::io("cannot run", script, e))?;
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
    match (status.success(), value) {
        (true, Some(v)) => Ok(v),
        (ok, _) => Err(LabError::Script {
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
