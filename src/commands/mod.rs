//! One file per subcommand: its clap arguments and `exec`, which returns the
//! process exit code or an error that main prints as one line (exit 2).

pub mod args;
pub mod bench;
pub mod drill;
pub mod host;
pub mod lab;
pub mod run;

/// What every subcommand returns.
pub type CmdResult = Result<i32, Box<dyn std::error::Error>>;
