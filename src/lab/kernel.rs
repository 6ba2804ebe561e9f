//! The lab kernel: built from Debian's linux-source-V by
//! resources/kernels/build-lab-kernel.sh and cached by its inputs, or from a
//! developer's own tree (`--tree`) by build-tree-kernel.sh, out of tree.

use super::{embedded, kernel_cache, scripts, LabError};
use std::path::{Path, PathBuf};

/// What to build.
#[derive(Debug, Clone)]
pub struct KernelSpec {
    /// Debian source package version, e.g. "7.2".
    pub version: String,
    /// "default" or "debug".
    pub flavour: String,
    /// Patches applied in order on top of the source.
    pub patches: Vec<PathBuf>,
    /// A developer's own source tree, built out of tree instead of Debian's
    /// source (`version` is then unused).
    pub tree: Option<PathBuf>,
}

/// A built lab kernel in the cache.
#[derive(Debug, Clone)]
pub struct LabKernel {
    pub dir: PathBuf,
}

impl LabKernel {
    pub fn bzimage(&self) -> PathBuf {
        self.dir.join("bzImage")
    }
    /// The configured build tree: KDIR for out-of-tree modules (for a
    /// `--tree` kernel, the `make O=` folder).
    pub fn build_tree(&self) -> PathBuf {
        self.dir.join("src")
    }
    /// Modules built with the kernel (test_hmm.ko among them).
    pub fn module(&self, name: &str) -> Option<PathBuf> {
        let path = self.dir.join("modules").join(format!("{name}.ko"));
        path.is_file().then_some(path)
    }
    /// Words this build needs on the lab's kernel command line. With KASAN,
    /// `no5lvl` (4-level page tables): QEMU's `-cpu max` offers LA57, and
    /// while identify_cpu() rebuilds the boot CPU's feature bits, LA57 reads
    /// as off, so the KASAN shadow's start moves and an interrupt in that
    /// window gets a false "wild-memory-access in rcu_is_watching" (3 of 15
    /// boots of the 7.2 debug lab; a CI run failed on it).
    pub fn boot_args(&self) -> &'static str {
        if self.config_enabled("CONFIG_KASAN") {
            "no5lvl"
        } else {
            ""
        }
    }
    fn config_enabled(&self, option: &str) -> bool {
        let set = format!("{option}=y");
        std::fs::read_to_string(self.build_tree().join(".config"))
            .is_ok_and(|c| c.lines().any(|l| l == set))
    }
    /// Seconds the from-scratch (or incremental) build took, as recorded.
    pub fn build_seconds(&self) -> Option<u64> {
        std::fs::read_to_string(self.dir.join("build-seconds"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }
}

/// The project's own lab patches (resources/kernels/patches/*.patch, in
/// name order, embedded in the binary), applied before the user's.
/// Known-bad patches live in a subfolder and are only applied when asked for.
pub fn project_patches(cache: &Path) -> Result<Vec<PathBuf>, LabError> {
    if embedded::PATCHES.is_empty() {
        return Ok(Vec::new());
    }
    let dir = embedded::write_out(cache, "patches", embedded::PATCHES, 0o644)?;
    let mut names: Vec<&str> = embedded::PATCHES.iter().map(|(n, _)| *n).collect();
    names.sort();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// Builds the kernel, or finds it in the cache.
pub fn ensure(cache: &Path, spec: &KernelSpec) -> Result<LabKernel, LabError> {
    if !matches!(spec.flavour.as_str(), "default" | "debug") {
        return Err(LabError::Invalid(format!(
            "unknown kernel flavour '{}' (default, debug)",
            spec.flavour
        )));
    }
    for patch in &spec.patches {
        if !patch.is_file() {
            return Err(LabError::Invalid(format!(
                "patch {} not found",
                patch.display()
            )));
        }
    }
    for (tool, package) in [
        ("make", "make"),
        ("gcc", "gcc"),
        ("flex", "flex"),
        ("bison", "bison"),
        ("bc", "bc"),
        ("apt-get", "apt"),
    ] {
        super::require_tool(tool, package)?;
    }
    let dir = scripts::materialize(cache)?;
    if let Some(tree) = &spec.tree {
        return ensure_tree(&dir, cache, tree, spec);
    }
    let mut args = vec![
        "--cache".to_string(),
        cache.display().to_string(),
        "--version".to_string(),
        spec.version.clone(),
        "--flavour".to_string(),
        spec.flavour.clone(),
    ];
    for patch in project_patches(cache)?.iter().chain(&spec.patches) {
        args.push("--patch".to_string());
        args.push(patch.display().to_string());
    }
    let dir = scripts::run_for_value(&dir.join("build-lab-kernel.sh"), &args, "KERNEL_DIR")?;
    used(cache, &dir)?;
    Ok(LabKernel { dir })
}

/// Records the use of the kernel in `dir` and keeps the cache within its
/// bound (`MMUVISOR_CACHE_MAX`), removing the least recently used others.
fn used(cache: &Path, dir: &Path) -> Result<(), LabError> {
    kernel_cache::touch(dir);
    let Some(max) = kernel_cache::max_from_env()? else {
        return Ok(());
    };
    for e in kernel_cache::prune(cache, max, &[dir.to_path_buf()])? {
        eprintln!(
            "[lab kernel] cache over {} ({}): removed the least recently used {} ({})",
            kernel_cache::gib(max),
            kernel_cache::MAX_ENV,
            e.dir.display(),
            kernel_cache::gib(e.bytes)
        );
    }
    Ok(())
}

/// Builds a developer's tree out of tree (build-tree-kernel.sh).
fn ensure_tree(
    scripts_dir: &Path,
    cache: &Path,
    tree: &Path,
    spec: &KernelSpec,
) -> Result<LabKernel, LabError> {
    if !tree.is_dir() {
        return Err(LabError::Invalid(format!(
            "--tree {}: no such folder",
            tree.display()
        )));
    }
    if !spec.patches.is_empty() {
        return Err(LabError::Invalid(
            "--patch does not combine with --tree (the tree is never written): commit or apply the change in the tree".into(),
        ));
    }
    let args = [
        "--cache".to_string(),
        cache.display().to_string(),
        "--tree".to_string(),
        tree.display().to_string(),
        "--flavour".to_string(),
        spec.flavour.clone(),
    ];
    let script = scripts_dir.join("build-tree-kernel.sh");
    let dir = scripts::run_for_value(&script, &args, "KERNEL_DIR")?;
    used(cache, &dir)?;
    Ok(LabKernel { dir })
}
