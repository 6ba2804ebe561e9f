//! The `mmuvisor` command line.

use clap::{Parser, Subcommand};
use mmuvisor::commands;

/// The environment variables mmuvisor reads, for --help.
const ENVIRONMENT: &str = "\
Environment:
  MMUVISOR_CACHE        cache folder for lab kernels and modules
                        (default $XDG_CACHE_HOME/mmuvisor or ~/.cache/mmuvisor)
  MMUVISOR_KMOD_DIR     helper module sources to build (default: this build's own)
  MMUVISOR_INTERP_ELF   run the drills on another build of the interp payload
  MMUVISOR_STDOUT_TTY   1/0: whether drills print for a terminal (lab run sets it)
  MMUVISOR_DRILL_RUNNING  file that drill keeps the running drill's name in
                        (the lab matrix reads it after a kernel crash)
  MMUVISOR_DRILL_DONE   comma-separated drills that drill skips: they ran in an
                        earlier lab (the lab matrix sets it after a crash)
  MMUVISOR_LAB_MONITOR  path: lab run opens QEMU's monitor on this unix socket
  MMUVISOR_LAB_TESTS    1: cargo test runs the lab tests (scripts/test.sh sets it)";

#[derive(Parser)]
#[command(
    name = "mmuvisor",
    version,
    about = "A minimal KVM hypervisor for KVM/mm end-to-end drills",
    after_help = ENVIRONMENT
)]
struct Cli {
    /// More log output (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Launch a test guest: a Linux kernel or a bare payload.
    Run(commands::run::Args),
    /// Build the lab kernel and run commands in the lab (QEMU, nested KVM).
    #[command(subcommand)]
    Lab(commands::lab::LabCmd),
    /// Exclusive-conversion and invalidation drills, judged against KVM and the guest.
    Drill(commands::drill::Args),
    /// The drills on this machine without the lab: check what is missing,
    /// build and load the helper module.
    #[command(subcommand)]
    Host(commands::host::HostCmd),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(commands::bench::BenchCmd),
    /// (internal) the exclusive-hugetlb drill's child process.
    #[command(name = "__hugetlb-probe", hide = true)]
    HugetlbProbe,
}

fn main() {
    let cli = Cli::parse();
    mmuvisor::logger::init(cli.verbose);
    let result = match cli.cmd {
        Cmd::Run(a) => commands::run::exec(a),
        Cmd::Lab(a) => commands::lab::exec(a),
        Cmd::Drill(a) => commands::drill::exec(a),
        Cmd::Bench(a) => commands::bench::exec(a),
        Cmd::Host(a) => commands::host::exec(a),
        Cmd::HugetlbProbe => Ok(mmuvisor::drill::drills::hugetlb_probe()),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("mmuvisor: error: {e}");
            std::process::exit(mmuvisor::exit_code::ERROR);
        }
    }
}
