//! `mmuvisor run`: boot a Linux kernel or run a bare payload, print its serial
//! output, and exit with the guest's exit code (see docs/design.md).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::args::{parse_size, parse_u64};
use super::CmdResult;
use crate::guest_memory::Thp;
use crate::loader::linux::LinuxImage;
use crate::vmm::{GuestEventKind, GuestImage, OutcomeReason, SerialSink, Vm, VmConfig, VmmError};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("guest").required(true).args(["kernel", "payload"])))]
pub struct Args {
    /// Linux kernel to boot (bzImage or ELF vmlinux), 64-bit direct boot.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Initial ramdisk for the kernel.
    #[arg(long, value_name = "PATH", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Extra kernel command line (appended to the default console=ttyS0 ...).
    #[arg(
        long,
        value_name = "STR",
        requires = "kernel",
        allow_hyphen_values = true
    )]
    pub cmdline: Option<String>,
    /// Bare payload: a built-in name, or an ELF path (with a '/', e.g. ./x.elf).
    #[arg(long, value_name = "NAME|PATH")]
    pub payload: Option<String>,
    /// Payload argument (up to 4, in RDX, RCX, R8, R9).
    #[arg(long = "arg", value_name = "N", requires = "payload", value_parser = parse_u64)]
    pub args: Vec<u64>,
    /// Guest RAM with a unit: 64M, 2G (default 512M for Linux, 64M for payloads).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub mem: Option<u64>,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1)]
    pub vcpus: usize,
    /// Transparent huge pages for guest RAM (madvise); default: the system's setting.
    #[arg(long, value_enum, default_value_t = Thp::Default)]
    pub thp: Thp,
    /// Stop the guest after this many seconds (exit 124).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
}

/// The ELF bytes of a payload: a path when `spec` has a '/' (`./hello`),
/// else a built-in name; a file in the current folder is never picked up
/// by a bare name.
pub fn resolve_payload(spec: &str) -> Result<Vec<u8>, String> {
    if spec.contains('/') {
        return std::fs::read(spec).map_err(|e| format!("cannot read payload {spec}: {e}"));
    }
    match crate::payloads::builtin(spec) {
        Some(b) => Ok(b.to_vec()),
        None => {
            let hint = if Path::new(spec).exists() {
                format!("; for the file, write ./{spec}")
            } else {
                String::new()
            };
            Err(format!(
                "no payload named '{spec}' (built-in: {}){hint}",
                crate::payloads::names().join(", ")
            ))
        }
    }
}

fn check_readable(what: &str, p: &Path) -> Result<(), String> {
    std::fs::File::open(p)
        .map(|_| ())
        .map_err(|e| format!("cannot read {what} {}: {e}", p.display()))
}

/// Builds the VM configuration from the command line.
pub fn config_from_args(a: &Args) -> Result<VmConfig, String> {
    let thp = a.thp;
    let image = if let Some(k) = &a.kernel {
        check_readable("kernel", k)?;
        if let Some(i) = &a.initrd {
            check_readable("initrd", i)?;
        }
        GuestImage::Linux(LinuxImage {
            kernel: k.clone(),
            initrd: a.initrd.clone(),
            cmdline: a.cmdline.clone().unwrap_or_default(),
        })
    } else if let Some(p) = &a.payload {
        if a.args.len() > 4 {
            return Err(format!("at most 4 --arg values, got {}", a.args.len()));
        }
        let mut args = [0u64; 4];
        args[..a.args.len()].copy_from_slice(&a.args);
        GuestImage::Payload {
            elf: resolve_payload(p)?,
            args,
        }
    } else {
        return Err("give --kernel or --payload".into());
    };
    let default_mem = match image {
        GuestImage::Linux(_) => 512 << 20,
        GuestImage::Payload { .. } => 64 << 20,
    };
    if let Some(t) = a.timeout {
        if !(t.is_finite() && t > 0.0) {
            return Err(format!(
                "--timeout {t} must be a positive number of seconds"
            ));
        }
    }
    Ok(VmConfig {
        mem_size: a.mem.unwrap_or(default_mem),
        vcpus: a.vcpus,
        thp,
        image,
        serial: SerialSink::Stdout,
        stdin: true,
    })
}

pub fn exec(a: Args) -> CmdResult {
    let config = config_from_args(&a)?;
    let mut vm = Vm::new(&config)?;
    for (phase, took) in vm.setup_times() {
        log::debug!("setup: {phase} {:.1} ms", took.as_secs_f64() * 1e3);
    }
    let mut running = vm.start()?;
    let deadline = a
        .timeout
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    loop {
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        match running.next_event(wait) {
            Ok(ev) => {
                if let GuestEventKind::Sync { stage, v0, v1 } = ev.kind {
                    log::debug!(
                        "vCPU {}: SYNC stage {stage} v0 {v0:#x} v1 {v1:#x}, replying 0",
                        ev.vcpu
                    );
                    // The vCPU may already be gone if another one ended the VM.
                    if let Err(e) = running.reply(ev.vcpu, 0) {
                        log::debug!("reply to vCPU {}: {e}", ev.vcpu);
                    }
                }
                if running.outcome().is_some() {
                    break;
                }
            }
            Err(VmmError::Timeout) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    running.stop();
                    break;
                }
            }
            Err(VmmError::Ended) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let outcome = running.wait()?;
    match &outcome.reason {
        OutcomeReason::Stopped => {
            eprintln!(
                "mmuvisor: timeout: guest still running after {} s",
                a.timeout.unwrap_or_default()
            );
            Ok(crate::exit_code::TIMEOUT)
        }
        OutcomeReason::Assert { .. } | OutcomeReason::Crash(_) => {
            eprintln!("mmuvisor: {outcome}");
            Ok(outcome.code)
        }
        _ => {
            log::info!("{outcome}");
            Ok(outcome.code)
        }
    }
}
