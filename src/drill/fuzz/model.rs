//! The reference model of the fuzz drill: for every data page, the value of
//! its counter word, whether the device holds it, and whether it is
//! read-only. Each step changes the model the way the kernel's contract
//! says it changes the page, and says what the kernel must answer.

use super::step::Step;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageState {
    pub value: u64,
    /// The device holds the page exclusively (QUERY must say so).
    pub held: bool,
    /// mprotect(PROT_READ).
    pub ro: bool,
    /// The soft-dirty bit pagemap must show; None where the contract
    /// leaves it open (never cleared: the VMA's own flag says soft-dirty;
    /// after a device write or a restore by a read, which may mark the PTE
    /// dirty; after MADV_DONTNEED).
    pub soft_dirty: Option<bool>,
    /// The host PTE is still the conversion's device-exclusive entry (the
    /// device may have lost the page already): the next CPU access
    /// restores it.
    pub exclusive_entry: bool,
}

/// What the kernel must answer to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The read (or the device's add, which returns the old value, or the
    /// device's read at conversion) gives this value.
    Value(u64),
    /// The step succeeds; nothing to compare.
    Done,
    /// A device access to a page the device does not hold: refused.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub pages: Vec<PageState>,
    vcpus: u8,
    /// Held pages lost to an invalidation wider than the step's own page.
    pub wider_revocations: u64,
}

impl Model {
    /// `pages` untouched pages (zero, not held, writable).
    pub fn new(pages: u8, vcpus: u8) -> Model {
        Model {
            pages: vec![PageState::default(); pages as usize],
            vcpus,
            wider_revocations: 0,
        }
    }

    /// Whether `step` may run in this state. A step that may not is
    /// skipped, so that every sub-sequence of a sequence (the shrinker's
    /// candidates) is still a valid test: a guest write to a read-only page
    /// would stop the guest, converting a held page is a no-op, a read-only
    /// page cannot be converted.
    pub fn allows(&self, step: Step) -> bool {
        let Some(p) = self.pages.get(step.page() as usize) else {
            return false;
        };
        match step {
            Step::GuestWrite { vcpu, .. } => !p.ro && vcpu < self.vcpus,
            Step::GuestRead { vcpu, .. } => vcpu < self.vcpus,
            Step::Convert { .. } => !p.ro && !p.held,
            Step::Protect { ro, .. } => ro != p.ro,
            _ => true,
        }
    }

    /// Applies an allowed `step`; returns what the kernel must answer.
    pub fn apply(&mut self, step: Step) -> Expect {
        let p = &mut self.pages[step.page() as usize];
        match step {
            // The VMM's store to a read-only page must fault (and change
            // nothing: the permission check comes before any restore).
            Step::VmmWrite { .. } if p.ro => Expect::Refused,
            // Any CPU access takes a held page back from the device.
            // A write sets soft-dirty (pte_mkdirty does on x86).
            Step::GuestWrite { val, .. } | Step::VmmWrite { val, .. } => {
                p.value = val as u64;
                p.held = false;
                p.exclusive_entry = false;
                p.soft_dirty = Some(true);
                Expect::Done
            }
            // A restore by a read may mark the PTE dirty (the folio is
            // dirty), which sets soft-dirty too.
            Step::GuestRead { .. } | Step::VmmRead { .. } => {
                if p.exclusive_entry {
                    p.soft_dirty = None;
                }
                p.held = false;
                p.exclusive_entry = false;
                Expect::Value(p.value)
            }
            // The conversion takes the page for writing (a write fault
            // where the PTE is not writable), and keeps soft-dirty.
            Step::Convert { .. } => {
                p.held = true;
                p.exclusive_entry = true;
                p.soft_dirty = Some(true);
                Expect::Value(p.value)
            }
            Step::Release { .. } => {
                p.held = false;
                Expect::Done
            }
            Step::DevRead { .. } if p.held => Expect::Value(p.value),
            Step::DevAdd { delta, .. } if p.held => {
                p.soft_dirty = None;
                let old = p.value;
                p.value = p.value.wrapping_add(delta as u64);
                Expect::Value(old)
            }
            Step::DevRead { .. } | Step::DevAdd { .. } => Expect::Refused,
            // mprotect(PROT_READ) revokes the device (exclusive-mprotect).
            Step::Protect { ro, .. } => {
                p.ro = ro;
                p.held &= !ro;
                Expect::Done
            }
            // MADV_DONTNEED: a zero page next time, the device revoked.
            Step::Dontneed { .. } => {
                p.value = 0;
                p.held = false;
                p.exclusive_entry = false;
                p.soft_dirty = None;
                Expect::Done
            }
            Step::ClearSoftDirty => {
                for q in &mut self.pages {
                    q.soft_dirty = Some(false);
                }
                Expect::Done
            }
            // MADV_PAGEOUT skips a device-exclusive entry; a page it
            // reclaims keeps its value.
            Step::Pageout { .. } => Expect::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_holds_a_page_until_a_cpu_touches_it() {
        let mut m = Model::new(2, 1);
        assert_eq!(
            m.apply(Step::GuestWrite {
                page: 0,
                vcpu: 0,
                val: 5
            }),
            Expect::Done
        );
        assert_eq!(m.apply(Step::Convert { page: 0 }), Expect::Value(5));
        assert_eq!(
            m.apply(Step::DevAdd { page: 0, delta: 2 }),
            Expect::Value(5)
        );
        assert_eq!(m.apply(Step::Pageout { page: 0 }), Expect::Done);
        assert!(m.pages[0].held);
        assert_eq!(
            m.apply(Step::GuestRead { page: 0, vcpu: 0 }),
            Expect::Value(7)
        );
        assert!(!m.pages[0].held);
        assert_eq!(m.apply(Step::DevRead { page: 0 }), Expect::Refused);
    }

    #[test]
    fn steps_that_cannot_run_are_not_allowed() {
        let mut m = Model::new(2, 2);
        assert!(!m.allows(Step::GuestRead { page: 2, vcpu: 0 }));
        assert!(!m.allows(Step::GuestRead { page: 0, vcpu: 2 }));
        assert!(!m.allows(Step::Protect { page: 0, ro: false }));
        m.apply(Step::Protect { page: 0, ro: true });
        assert!(!m.allows(Step::GuestWrite {
            page: 0,
            vcpu: 0,
            val: 1
        }));
        assert_eq!(m.apply(Step::VmmWrite { page: 0, val: 1 }), Expect::Refused);
        assert_eq!(m.pages[0].value, 0);
        assert!(!m.allows(Step::Convert { page: 0 }));
        m.apply(Step::Convert { page: 1 });
        assert!(!m.allows(Step::Convert { page: 1 }));
        m.apply(Step::Protect { page: 1, ro: true });
        assert!(!m.pages[1].held, "mprotect(PROT_READ) revokes the device");
    }
}
