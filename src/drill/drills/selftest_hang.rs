//! A drill that never ends: the per-drill `--timeout` is tested with it.

use crate::drill::report::timeline::Timeline;
use crate::drill::session::DrillResult;
use crate::drill::verdict::Verdict;
use crate::drill::Ctx;

pub fn run(_ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
