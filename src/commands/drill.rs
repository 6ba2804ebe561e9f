//! `mmuvisor drill` (owned by the drills issue).
use super::CmdResult;

#[derive(clap::Args)]
pub struct Args {}

pub fn exec(_args: Args) -> CmdResult {
    Err("drill: not implemented yet".into())
}
