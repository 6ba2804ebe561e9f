//! `mmuvisor lab kernel` and `mmuvisor lab run`.

use super::args::parse_size;
use super::CmdResult;
use crate::lab::{cache, kernel, kernel_cache, known_bad, matrix, session};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Clone)]
pub struct KernelArgs {
    /// Debian kernel source version: 7.2 (sid), 6.12 (trixie), 6.1 (bookworm),
    /// 7.3 (experimental), latest (the newest Debian has); several,
    /// comma-separated (6.1,6.12,7.2), run the command on each: a matrix.
    #[arg(long, default_value = "7.2")]
    pub version: String,
    /// Patch applied on top of the source (repeatable, in order).
    #[arg(long = "patch", value_name = "FILE")]
    pub patches: Vec<PathBuf>,
    /// Your own kernel source tree instead of Debian's: built out of tree
    /// into the cache (the tree is never written), rebuilt incrementally
    /// after a change.
    #[arg(long, value_name = "DIR", conflicts_with = "version")]
    pub tree: Option<PathBuf>,
    /// Kernel flavour: default, or debug (DEBUG_VM, lockdep, KASAN, memcg).
    #[arg(long, value_enum, default_value_t = Flavour::Default)]
    pub flavour: Flavour,
    /// Debian's own prebuilt kernel of --version (linux-image from its
    /// suite, with that kernel's modules and headers) instead of one the lab
    /// builds: nothing is compiled but the helper module.
    #[arg(long, conflicts_with_all = ["tree", "patches"])]
    pub stock: bool,
    /// Debian flavour of the stock kernel: amd64, cloud, or rt (PREEMPT_RT);
    /// implies --stock.
    #[arg(long, value_name = "FLAVOUR", value_parser = ["amd64", "cloud", "rt"], conflicts_with_all = ["tree", "patches"])]
    pub stock_flavour: Option<String>,
    /// Cache folder (default: $XDG_CACHE_HOME/mmuvisor or ~/.cache/mmuvisor).
    #[arg(long, env = "MMUVISOR_CACHE")]
    pub cache: Option<PathBuf>,
}

/// Lab kernel flavours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavour {
    /// The lab's kernel.
    Default,
    /// With DEBUG_VM, lockdep, KASAN and memory cgroups (resources/kernels/debug.config).
    Debug,
}

impl Flavour {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::Default => "default",
            Flavour::Debug => "debug",
        }
    }
}

impl KernelArgs {
    pub fn spec(&self) -> kernel::KernelSpec {
        let stock = match (&self.stock_flavour, self.stock) {
            (Some(f), _) => Some(f.clone()),
            (None, true) => Some("amd64".to_string()),
            (None, false) => None,
        };
        kernel::KernelSpec {
            version: self.version.clone(),
            flavour: self.flavour.as_str().to_string(),
            patches: self.patches.clone(),
            tree: self.tree.clone(),
            stock,
        }
    }
}

#[derive(clap::Subcommand)]
pub enum LabCmd {
    /// Build the lab kernel (or find it in the cache) and print its folder.
    Kernel(KernelArgs),
    /// Boot the lab and run CMD inside as root; exits with CMD's status.
    Run {
        #[command(flatten)]
        kernel: KernelArgs,
        /// Lab memory with a unit (2G, 1536M).
        #[arg(long, default_value = "2G", value_parser = parse_size)]
        mem: u64,
        /// Lab vCPUs [default: 1 under TCG, 2 with nested KVM]. Under TCG several
        /// CPUs take turns on one host thread (MMUVISOR_LAB_TCG=multi: a thread
        /// each, which QEMU's nested SVM does not survive).
        #[arg(long)]
        cpus: Option<u32>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 1200)]
        timeout: u64,
        /// Don't build or load the helper module.
        #[arg(long)]
        no_kmod: bool,
        /// With several --version: where the matrix goes as JSON.
        #[arg(long, value_name = "FILE", default_value = "lab-matrix.json")]
        json: PathBuf,
        /// The command to run in the lab.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// List the kernels in the cache (size, last use, inputs), most
    /// recently used first; --prune removes the least recently used until
    /// the rest fit in --max-size (default: MMUVISOR_CACHE_MAX, else 64G).
    Cache {
        /// Cache folder (as for `lab kernel`).
        #[arg(long, env = "MMUVISOR_CACHE")]
        cache: Option<PathBuf>,
        /// Remove the least recently used kernels until the rest fit.
        #[arg(long)]
        prune: bool,
        /// The bound for --prune (a size: 20G).
        #[arg(long, value_name = "SIZE", value_parser = parse_size, requires = "prune")]
        max_size: Option<u64>,
    },
    /// The kill matrix: run the drills on the unpatched kernel and on every
    /// known-bad fixture kernel (resources/kernels/patches/known-bad/),
    /// print drills x kernels; fails unless each fixture is caught by the
    /// checks its header names and the unpatched kernel passes every drill.
    KnownBad {
        /// Debian kernel source version the fixtures apply to.
        #[arg(long, default_value = "7.2")]
        version: String,
        /// Only fixtures whose file name contains this (repeatable).
        #[arg(long = "fixture", value_name = "NAME")]
        only: Vec<String>,
        /// Kernel flavour of every column: `debug` adds DEBUG_VM, lockdep
        /// and KASAN, so the kernel's own assertions count.
        #[arg(long, default_value = "default", value_parser = ["default", "debug"])]
        flavour: String,
        /// Cache folder (as for `lab kernel`).
        #[arg(long, env = "MMUVISOR_CACHE")]
        cache: Option<PathBuf>,
        /// Lab memory with a unit (2G, 1536M).
        #[arg(long, default_value = "2G", value_parser = parse_size)]
        mem: u64,
        /// Drills to run on each kernel (default: all).
        #[arg(last = true)]
        drills: Vec<String>,
    },
}

pub fn exec(cmd: LabCmd) -> CmdResult {
    match cmd {
        LabCmd::Cache {
            cache: dir,
            prune,
            max_size,
        } => {
            let dir = cache::cache_dir(dir.as_ref())?;
            if prune {
                let max = match max_size {
                    Some(m) => m,
                    None => kernel_cache::max_from_env()?.unwrap_or(u64::MAX),
                };
                for e in kernel_cache::prune(&dir, max, &[])? {
                    println!(
                        "removed {} ({})",
                        e.dir.display(),
                        kernel_cache::gib(e.bytes)
                    );
                }
            }
            let all = kernel_cache::entries(&dir)?;
            let now = std::time::SystemTime::now();
            println!("{:>9}  {:>10}  kernel (inputs)", "size", "last used");
            for e in &all {
                let ago = now.duration_since(e.last_used).unwrap_or_default();
                println!(
                    "{:>9}  {:>10}  {}{} ({})",
                    kernel_cache::gib(e.bytes),
                    format!("{} ago", ago_text(ago)),
                    e.dir
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                    if e.complete { "" } else { " [unfinished]" },
                    e.inputs
                );
            }
            println!(
                "{} kernels, {} in {}",
                all.len(),
                kernel_cache::gib(all.iter().map(|e| e.bytes).sum()),
                dir.join("kernels").display()
            );
            Ok(0)
        }
        LabCmd::KnownBad {
            version,
            only,
            flavour,
            cache,
            mem,
            drills,
        } => {
            let req = known_bad::MatrixRun {
                cache,
                version,
                only,
                flavour,
                mem_mib: mem >> 20,
                cpus: crate::lab::qemu::DRILL_CPUS,
                drills,
            };
            let (text, ok) = known_bad::run(&req)?;
            print!("{text}");
            Ok(if ok { 0 } else { 1 })
        }
        LabCmd::Kernel(args) => {
            let cache = cache::cache_dir(args.cache.as_ref())?;
            let versions = match args.tree {
                Some(_) => vec![args.version.clone()],
                None => matrix::parse_versions(&args.version)?,
            };
            for version in versions {
                let spec = kernel::KernelSpec {
                    version,
                    ..args.spec()
                };
                let built = kernel::ensure(&cache, &spec)?;
                println!("{}", built.dir.display());
            }
            Ok(0)
        }
        LabCmd::Run {
            kernel,
            mem,
            cpus,
            timeout,
            no_kmod,
            json,
            command,
        } => {
            let versions = match kernel.tree {
                Some(_) => vec![kernel.version.clone()],
                None => matrix::parse_versions(&kernel.version)?,
            };
            let req = session::LabRun {
                cache: kernel.cache.clone(),
                kernel: kernel.spec(),
                mem_mib: mem >> 20,
                cpus: cpus.unwrap_or_else(crate::lab::qemu::default_cpus),
                timeout: Duration::from_secs(timeout),
                command,
                no_kmod,
                keep_out: None,
                console_to_stderr: false,
            };
            if versions.len() > 1 {
                let req = matrix::MatrixRun {
                    base: req,
                    versions,
                    json,
                };
                return match matrix::run(&req) {
                    Ok((text, ok)) => {
                        print!("{text}");
                        Ok(if ok { 0 } else { 1 })
                    }
                    Err(crate::lab::LabError::Interrupted) => Ok(130),
                    Err(e) => Err(e.into()),
                };
            }
            match session::run(&req) {
                Ok(code) => Ok(code),
                Err(crate::lab::LabError::Interrupted) => {
                    eprintln!("mmuvisor: lab interrupted; QEMU stopped, temporary files removed");
                    Ok(crate::exit_code::INTERRUPTED)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn ago_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}
