//! `mmuvisor bench NAME`: benchmarks print figures (ratios against a peer
//! measured in the same run); they assert nothing. Each issue adds its own.
use super::CmdResult;

#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// Placeholder until the first benchmark lands.
    None,
}

pub fn exec(_cmd: BenchCmd) -> CmdResult {
    Err("bench: not implemented yet".into())
}
