//! `mmuvisor bench NAME`: benchmarks print figures (ratios against a peer
//! measured in the same run); they assert nothing. Each issue adds its own.
use super::lab::KernelArgs;
use super::CmdResult;
use crate::bench;
use crate::lab::{cache, kernel, session};
use std::time::{Duration, Instant};

#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// VM setup time and SYNC round trip, against peers measured in the same run.
    Setup(crate::bench::setup::SetupArgs),
    /// Device-exclusive conversion rate of /dev/mmuvisor against test_hmm's
    /// HMM_DMIRROR_EXCLUSIVE (needs mmuvisor.ko and test_hmm.ko: run in the lab).
    Convert(crate::bench::convert::ConvertArgs),
    /// Revocation round trip (guest touch -> PTE present again) vs a plain
    /// process touching an exclusive page; p50/p99 (needs the module: lab).
    Revoke {
        /// Conversions to time.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
    },
    /// Every drill (or the named ones) N times: verdict stability.
    Repeat {
        names: Vec<String>,
        #[arg(long, default_value_t = 50)]
        times: usize,
    },
    /// Lab kernel build: the recorded time of the cached build (target <= 8 min on 2 cores).
    KernelBuild(KernelArgs),
    /// Lab boot to the command, N times (target <= 2.5 s).
    LabBoot {
        #[command(flatten)]
        kernel: KernelArgs,
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
    /// Nested Linux guest boot in the lab: mmuvisor against QEMU, same kernel and initramfs.
    NestedBoot {
        #[command(flatten)]
        kernel: KernelArgs,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

fn lab(kernel: &KernelArgs, command: Vec<String>) -> session::LabRun {
    session::LabRun {
        cache: kernel.cache.clone(),
        kernel: kernel.spec(),
        mem_mib: 2048,
        cpus: crate::lab::qemu::default_cpus(),
        timeout: Duration::from_secs(900),
        command,
        no_kmod: true,
        keep_out: None,
        console_to_stderr: false,
    }
}

pub fn exec(cmd: BenchCmd) -> CmdResult {
    match cmd {
        BenchCmd::Setup(a) => crate::bench::setup::exec(a),
        BenchCmd::Convert(a) => crate::bench::convert::convert(a),
        BenchCmd::Revoke { rounds } => {
            crate::bench::drill::revoke(rounds.max(1), &Default::default())?;
            Ok(0)
        }
        BenchCmd::Repeat { names, times } => Ok(crate::bench::drill::repeat(
            &names,
            times.max(1),
            &Default::default(),
        )?),
        BenchCmd::KernelBuild(args) => {
            let cache = cache::cache_dir(args.cache.as_ref())?;
            let spec = args.spec();
            let start = Instant::now();
            let built = kernel::ensure(&cache, &spec)?;
            let now = start.elapsed().as_secs_f64();
            // Objects as the progress line counts them (`  CC` lines of a
            // from-scratch build).
            let objects = std::fs::read_to_string(built.dir.join("build-objects"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(|n| format!(", {n} objects compiled (target <= 900)"))
                .unwrap_or_default();
            match built.build_seconds() {
                Some(s) => println!("kernel-build: {s} s recorded for {}{objects} (target <= 480 s); this call took {now:.1} s", built.dir.display()),
                None => println!("kernel-build: no recorded build time{objects}; this call took {now:.1} s"),
            }
            Ok(0)
        }
        BenchCmd::LabBoot { kernel, runs } => {
            // The peer: the other kind of kernel of the same version
            // (Debian's prebuilt against the lab's build), measured in the
            // same run; none for --tree or --patch.
            let mut kinds = vec![kernel.clone()];
            if kernel.tree.is_none() && kernel.patches.is_empty() {
                let mut peer = kernel.clone();
                peer.stock = !(kernel.stock || kernel.stock_flavour.is_some());
                peer.stock_flavour = None;
                kinds.push(peer);
            }
            let mut medians = Vec::new();
            for k in &kinds {
                // Build or fetch once outside the timing.
                session::run(&lab(k, vec!["true".into()]))?;
                let mut times = Vec::new();
                for _ in 0..runs.max(1) {
                    let start = Instant::now();
                    session::run(&lab(k, vec!["true".into()]))?;
                    times.push(start.elapsed().as_secs_f64());
                }
                times.sort_by(f64::total_cmp);
                let what = if k.spec().stock.is_some() {
                    "Debian's prebuilt"
                } else {
                    "built"
                };
                println!(
                    "lab-boot {} {what}: median {:.2} s, min {:.2} s over {} runs (QEMU start to command exit, initramfs packing included; target: built <= 2.5 s, prebuilt <= 5 s)",
                    k.version,
                    times[times.len() / 2],
                    times[0],
                    times.len()
                );
                medians.push(times[times.len() / 2]);
            }
            if let [a, b] = medians[..] {
                println!("lab-boot: first / second = {:.2}", a / b);
            }
            Ok(0)
        }
        BenchCmd::NestedBoot { kernel, runs } => {
            if std::env::var("MMUVISOR_LAB").is_ok() {
                bench::lab::nested_boot_inner(runs.max(1))?;
                return Ok(0);
            }
            let inner = vec![
                "mmuvisor".into(),
                "bench".into(),
                "nested-boot".into(),
                "--runs".into(),
                runs.to_string(),
            ];
            Ok(session::run(&lab(&kernel, inner))?)
        }
    }
}
