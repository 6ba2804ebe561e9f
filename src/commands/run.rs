//! `mmuvisor run` (owned by the VMM foundation issue).
use super::CmdResult;

#[derive(clap::Args)]
pub struct Args {}

pub fn exec(_args: Args) -> CmdResult {
    Err("run: not implemented yet".into())
}
