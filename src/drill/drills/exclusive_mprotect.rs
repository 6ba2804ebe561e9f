//! exclusive-mprotect: mprotect(PROT_READ) on a page the device holds must
//! revoke the device's exclusive (write) access; the guest then reads it
//! (it must see the device's value), the host makes it writable again and
//! the guest's increments map it again.

use crate::drill::exclusive::check_revoked;
use crate::drill::exclusive::{held_page, touch_and_finish, HeldPage};
use crate::drill::guest::Op;
use crate::drill::report::timeline::Timeline;
use crate::drill::session::{host_err, DrillResult};
use crate::drill::verdict::Verdict;
use crate::drill::Ctx;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let HeldPage {
        mut s,
        mut dev,
        n,
        page,
        o,
    } = held_page(ctx)?;
    let (r, _) = s.host("mprotect(PROT_READ)", |s| {
        s.mprotect(page, 1, libc::PROT_READ)
    });
    r.map_err(host_err("mprotect"))?;
    check_revoked(
        &mut s,
        dev.as_mut(),
        o.hva,
        "device-revoked-by-mprotect",
        |held| {
            format!("after mprotect(PROT_READ) QUERY says {held:?}: the device kept exclusive (write) access to a page the VMA no longer lets anyone write")
        },
    )?;
    let want = o.initial_value + o.device_increments;
    let seen = s.step(0, Op::Read, page)?;
    s.v.check(
        "guest-reads-device-value",
        seen == want,
        format!("guest read {seen:#x} from the read-only page, the device left {want:#x}"),
    );
    let (r, _) = s.host("mprotect(PROT_READ|PROT_WRITE)", |s| {
        s.mprotect(page, 1, libc::PROT_READ | libc::PROT_WRITE)
    });
    r.map_err(host_err("mprotect"))?;
    touch_and_finish(s, dev.as_mut(), page, n, o)
}
