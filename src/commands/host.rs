//! `mmuvisor host check` and `mmuvisor host setup`: the drills on this
//! machine without the lab (see src/host.rs).

use std::path::PathBuf;

use super::CmdResult;
use crate::host;

#[derive(clap::Subcommand)]
pub enum HostCmd {
    /// Check what the drills need here (KVM with VMX/SVM, tracefs with KVM's
    /// MMU events, DEVICE_PRIVATE, the helper module); exit 1 if anything is
    /// missing, saying what.
    Check,
    /// Build the helper module against the running kernel's build tree and
    /// load it, then check.
    Setup {
        /// Kernel build tree [default: /lib/modules/$(uname -r)/build].
        #[arg(long, value_name = "DIR")]
        kdir: Option<PathBuf>,
        /// Build only; do not load the module.
        #[arg(long)]
        no_load: bool,
        /// Cache folder for the module build.
        #[arg(long, env = "MMUVISOR_CACHE")]
        cache: Option<PathBuf>,
    },
}

fn report() -> i32 {
    let prereqs = host::check();
    for p in &prereqs {
        println!(
            "{:<8} {:<15} {}",
            if p.ok { "ok" } else { "missing" },
            p.name,
            p.detail
        );
    }
    if prereqs.iter().all(|p| p.ok) {
        println!("# ready: mmuvisor drill all");
        crate::exit_code::OK
    } else {
        crate::exit_code::FAIL
    }
}

pub fn exec(cmd: HostCmd) -> CmdResult {
    match cmd {
        HostCmd::Check => Ok(report()),
        HostCmd::Setup {
            kdir,
            no_load,
            cache,
        } => {
            let ko = host::setup(kdir.as_deref(), cache.as_ref(), !no_load)?;
            println!("# helper module: {}", ko.display());
            if no_load {
                return Ok(crate::exit_code::OK);
            }
            Ok(report())
        }
    }
}
