//! The lab kernel: built from Debian's linux-source-V by
//! resources/kernels/build-lab-kernel.sh and cached by its inputs, or from a
//! developer's own tree (`--tree`) by build-tree-kernel.sh, out of tree;
//! or Debian's prebuilt kernel (`--stock`), fetched by fetch-stock-kernel.sh.

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
    /// Debian's prebuilt kernel of that flavour (amd64, cloud, rt) instead
    /// of a build (fetch-stock-kernel.sh).
    pub stock: Option<String>,
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
    /// Debian's prebuilt kernel: "PACKAGE VERSION UNAME"; None for a build.
    pub fn stock(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("stock"))
            .ok()
            .map(|s| s.trim().to_string())
    }
    /// The kernel's own modules the lab loads before anything else, in
    /// order (a stock kernel's kvm, virtio-mmio, 9p, loop; none for a build,
    /// which has them built in).
    pub fn boot_modules(&self) -> Vec<PathBuf> {
        let mut mods: Vec<PathBuf> = std::fs::read_dir(self.dir.join("boot-modules"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        mods.sort();
        mods
    }
    /// Extra `make` arguments for out-of-tree modules (a stock kernel built
    /// with a compiler this machine lacks: the stand-in compiler).
    pub fn make_args(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("make-args"))
            .map(|s| {
                s.lines()
                    .map(str::to_string)
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default()
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
    if let Some(f) = spec
        .stock
        .as_deref()
        .filter(|f| !matches!(*f, "amd64" | "cloud" | "rt"))
    {
        return Err(LabError::Invalid(format!(
            "unknown stock flavour '{f}' (amd64, cloud, rt)"
        )));
    }
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
    if let Some(flavour) = &spec.stock {
        return ensure_stock(&dir, cache, flavour, spec);
    }
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

/// Fetches Debian's prebuilt kernel (fetch-stock-kernel.sh).
fn ensure_stock(
    scripts_dir: &Path,
    cache: &Path,
    flavour: &str,
    spec: &KernelSpec,
) -> Result<LabKernel, LabError> {
    let clash = if !spec.patches.is_empty() {
        Some("--patch")
    } else if spec.tree.is_some() {
        Some("--tree")
    } else if spec.flavour != "default" {
        Some("--flavour debug")
    } else {
        None
    };
    if let Some(what) = clash {
        return Err(LabError::Invalid(format!(
            "{what} needs a kernel the lab builds: it does not combine with --stock (Debian's prebuilt kernel)"
        )));
    }
    let args = [
        "--cache".to_string(),
        cache.display().to_string(),
        "--version".to_string(),
        spec.version.clone(),
        "--flavour".to_string(),
        flavour.to_string(),
    ];
    let script = scripts_dir.join("fetch-stock-kernel.sh");
    let dir = scripts::run_for_value(&script, &args, "KERNEL_DIR")?;
    used(cache, &dir)?;
    Ok(LabKernel { dir })
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
