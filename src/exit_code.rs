//! mmuvisor's exit statuses, one list for every command.
//!
//! `run` passes the guest's own status through (the debug-exit port, 0 on a
//! clean end); the drill commands follow kselftest; the rest are ours.

/// Success; all drills passed.
pub const OK: i32 = 0;
/// kselftest KSFT_FAIL: a drill or check failed; `run`: the guest's ABORT.
pub const FAIL: i32 = 1;
/// Bad input or a host error (`mmuvisor: error: ...` on stderr).
pub const ERROR: i32 = 2;
/// `run`: the guest crashed (triple fault, internal error, unhandled I/O
/// from a payload).
pub const GUEST_CRASH: i32 = 3;
/// kselftest KSFT_SKIP: nothing failed, something could not run.
pub const SKIP: i32 = 4;
/// `--timeout` ran out (as timeout(1)).
pub const TIMEOUT: i32 = 124;
/// Interrupted by SIGINT/SIGTERM (128 + SIGINT, as shells report it).
pub const INTERRUPTED: i32 = 130;
