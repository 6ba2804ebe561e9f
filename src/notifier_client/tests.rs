//! Unit tests of the notifier client that need no module. The module's
//! own tests, which need /dev/mmuvisor, are integration tests
//! (tests/integration/kmod_*.rs) run in the lab by lab_kmod.rs.

use super::uapi::*;
use super::*;

#[test]
fn event_records_decode() {
    let raw = mmuvisor_event {
        seq: 7,
        time_ns: 99,
        start: 0x1000,
        end: 0x2000,
        event: EV_EXCLUSIVE,
        flags: EVENT_F_OWNER_SELF | EVENT_F_OWNER_SET | EVENT_F_BLOCKABLE,
        revoked: 0,
        count: 1,
    };
    let e = NotifierEvent::from(&raw);
    assert_eq!(e.kind, NotifierEventKind::Exclusive);
    assert!(e.owner_is_self && e.owner_set && e.blockable);
    assert_eq!(NotifierEventKind::from(EV_CLEAR), NotifierEventKind::Clear);
    assert_eq!(NotifierEventKind::from(42), NotifierEventKind::Other(42));
    assert_eq!(
        NotifierEventKind::ProtectionVma.to_string(),
        "PROTECTION_VMA"
    );
    let s = PageState::from(&mmuvisor_page_state {
        pfn: 5,
        state: PAGE_REVOKED,
        revocations: 2,
    });
    assert_eq!(s.hold, Hold::Revoked);
    assert_eq!(s.revocations, 2);
}

#[test]
fn open_without_device_is_a_clear_error() {
    let e = NotifierClient::open_path("/nonexistent/mmuvisor").expect_err("no such device");
    assert!(e.to_string().contains("module loaded"), "{e}");
    assert_eq!(e.errno(), Some(libc::ENOENT));
}
