//! Builds the helper module (kmod/) for a lab kernel, cached by the
//! kernel build and the module's sources.

use super::cache::StableHash;
use super::kernel::LabKernel;
use super::{embedded, LabError};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The module sources: `$MMUVISOR_KMOD_DIR` (a developer's copy; an error
/// unless it holds a Kbuild or Makefile), else the sources embedded in this
/// binary, written out into the cache.
pub fn source_dir(cache: &Path) -> Result<PathBuf, LabError> {
    match std::env::var_os("MMUVISOR_KMOD_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.join("Kbuild").is_file() || dir.join("Makefile").is_file() {
                Ok(dir)
            } else {
                Err(LabError::Invalid(format!(
                    "MMUVISOR_KMOD_DIR={}: no Kbuild or Makefile there",
                    dir.display()
                )))
            }
        }
        None => embedded::write_out(cache, "kmod", embedded::KMOD, 0o644),
    }
}

fn hash_tree(dir: &Path, hasher: &mut StableHash) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "tests" {
                hasher.field(name.as_bytes());
                hash_tree(&path, hasher)?;
            }
        } else if name.ends_with(".c")
            || name.ends_with(".h")
            || name == "Kbuild"
            || name == "Makefile"
        {
            hasher.field(name.as_bytes());
            hasher.field(&std::fs::read(&path)?);
        }
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Builds mmuvisor.ko for `kernel` (or finds it in the cache: keyed by the
/// kernel's build and the module's sources).
pub fn ensure(cache: &Path, kernel: &LabKernel) -> Result<PathBuf, LabError> {
    // A kernel built from a developer's tree keeps its folder across
    // changes; its `state` file says which sources it was built from.
    let state = std::fs::read(kernel.dir.join("state")).unwrap_or_default();
    let kname = kernel
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    build_against(
        cache,
        &kernel.build_tree(),
        &kname,
        &state,
        &kernel.make_args(),
    )
}

/// Builds mmuvisor.ko against the kernel build tree `kdir` (or finds it in
/// the cache, keyed by `name`, `state` and the module's sources), with
/// `make_args` added to make's command line.
pub fn build_against(
    cache: &Path,
    kdir: &Path,
    name: &str,
    state: &[u8],
    make_args: &[String],
) -> Result<PathBuf, LabError> {
    let src = source_dir(cache)?;
    let mut hasher = StableHash::new();
    hash_tree(&src, &mut hasher).map_err(|e| LabError::io("cannot read", &src, e))?;
    if !state.is_empty() {
        hasher.field(state);
    }
    let out = cache.join("kmod").join(format!("{name}-{}", hasher.hex()));
    let ko = out.join("mmuvisor.ko");
    if ko.is_file() {
        return Ok(ko);
    }
    let build = out.join("build");
    let _ = std::fs::remove_dir_all(&build);
    copy_tree(&src, &build)
        .map_err(|e| LabError::io("cannot copy the module sources to", &build, e))?;
    eprintln!("[lab] building the helper module for {name}");
    let output = Command::new("make")
        .arg("-C")
        .arg(kdir)
        .arg(format!("M={}", build.display()))
        .args(make_args)
        .arg("modules")
        .output()
        .map_err(|e| LabError::io("cannot run make for", &build, e))?;
    let built = build.join("mmuvisor.ko");
    if !output.status.success() || !built.is_file() {
        let log = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
        return Err(LabError::Invalid(format!(
            "the helper module did not build for {name} (make output above)"
        )));
    }
    std::fs::copy(&built, &ko).map_err(|e| LabError::io("cannot copy", &built, e))?;
    Ok(ko)
}
