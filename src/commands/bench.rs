//! `mmuvisor bench NAME`: benchmarks print figures (ratios against a peer
//! measured in the same run); they assert nothing. Each issue adds its own.
use super::CmdResult;

#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// Placeholder until the first benchmark lands.
    None,
    /// VM setup time and SYNC round trip, against peers measured in the same run.
    Setup(super::bench_setup::SetupArgs),
}

pub fn exec(cmd: BenchCmd) -> CmdResult {
    match cmd {
        BenchCmd::Setup(a) => super::bench_setup::exec(a),
        _ => Err("bench: not implemented yet".into()),
    }
}
