//! `mmuvisor lab` (owned by the lab issue).
use super::CmdResult;

#[derive(clap::Subcommand)]
pub enum LabCmd {
    /// Build or reuse the lab kernel.
    Kernel {},
}

pub fn exec(_cmd: LabCmd) -> CmdResult {
    Err("lab: not implemented yet".into())
}
