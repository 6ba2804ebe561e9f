//! The reference model of the fuzz drill: for every data page, the value of
//! its counter word, whether the device holds it, and whether it is
//! read-only. Each step changes the model the way the kernel's contract
//! says it changes the page, and says what the kernel must answer.

use super::step::{Step, RACE_LOOPS};

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
    /// The page has a page-table entry (present, swap or device-exclusive):
    /// it was accessed or converted since it was last zapped.
    pub mapped: bool,
    /// Write-protected with userfaultfd: pagemap must say uffd-wp.
    pub wp: bool,
    /// The device-exclusive entry may restore writable: the conversion
    /// took a writable PTE and no mprotect(PROT_READ) came since (before
    /// 6.15 such an mprotect makes the entry readable for good).
    pub entry_writable: bool,
    /// The host PTE is known to be writable (just written, or restored from
    /// a writable entry in a writable VMA): the VMM's store takes no fault.
    pub pte_writable: bool,
}

/// Which pages move_pages can move to another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migration {
    None,
    NotHeld,
    All,
}

/// What the kernel must answer to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The read (or the device's add, which returns the old value, or the
    /// device's read at conversion) gives this value.
    Value(u64),
    /// The step succeeds; nothing to compare.
    Done,
    /// The VMM's store succeeds without a page fault (the PTE is writable).
    NoFault,
    /// A device access to a page the device does not hold: refused.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub pages: Vec<PageState>,
    vcpus: u8,
    /// Held pages lost to an invalidation wider than the step's own page.
    pub wider_revocations: u64,
    /// The guest has KVM memslots that can be deleted and added back.
    memslots: bool,
    /// What the host can migrate: nothing (one NUMA node), pages but not
    /// held ones (before 6.15 the device-exclusive entry pins its page),
    /// or every page.
    migration: Migration,
    /// They are deleted now: the guest cannot run.
    pub slots_deleted: bool,
    /// clear_refs ran: the VMA tracks soft-dirty, and a PTE that is not
    /// soft-dirty is kept read-only so that the next write faults.
    sd_tracking: bool,
}

impl Model {
    /// `pages` untouched pages (zero, not held, writable).
    pub fn new(pages: u8, vcpus: u8, memslots: bool, migration: Migration) -> Model {
        Model {
            pages: vec![PageState::default(); pages as usize],
            vcpus,
            wider_revocations: 0,
            memslots,
            migration,
            slots_deleted: false,
            sd_tracking: false,
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
        let runs = !self.slots_deleted;
        match step {
            Step::GuestWrite { vcpu, .. } => runs && !p.ro && !p.wp && vcpu < self.vcpus,
            Step::GuestRead { vcpu, .. } => runs && vcpu < self.vcpus,
            Step::Race { vcpu, .. } => runs && !p.ro && !p.wp && vcpu < self.vcpus,
            // A write to a write-protected page would wait for a userfaultfd
            // handler there is none of (the conversion takes it for writing).
            Step::VmmWrite { .. } => !p.wp,
            Step::Convert { .. } => !p.ro && !p.held && !p.wp,
            Step::Protect { ro, .. } => ro != p.ro,
            // Write protection applies to entries only; an anonymous page
            // without one is not protected (no UFFD_FEATURE_WP_UNPOPULATED).
            Step::UffdWp { on, .. } => on != p.wp && (p.mapped || !on),
            Step::MemslotDelete => self.memslots && !self.slots_deleted,
            Step::MemslotAdd => self.slots_deleted,
            Step::Migrate { .. } => match self.migration {
                Migration::None => false,
                Migration::NotHeld => !p.exclusive_entry,
                Migration::All => true,
            },
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
            // A write sets soft-dirty (pte_mkdirty does on x86) and leaves
            // the PTE writable.
            Step::GuestWrite { val, .. } | Step::VmmWrite { val, .. } => {
                let no_fault = p.pte_writable && matches!(step, Step::VmmWrite { .. });
                p.value = val as u64;
                p.held = false;
                p.exclusive_entry = false;
                p.soft_dirty = Some(true);
                p.mapped = true;
                p.pte_writable = true;
                if no_fault {
                    Expect::NoFault
                } else {
                    Expect::Done
                }
            }
            // A restore by a read may mark the PTE dirty (the folio is
            // dirty), which sets soft-dirty too. The restored PTE is
            // writable where the entry was and the VMA, userfaultfd and
            // soft-dirty tracking (the entry's bit) allow it.
            Step::GuestRead { .. } | Step::VmmRead { .. } => {
                if p.exclusive_entry {
                    let tracked = !self.sd_tracking || p.soft_dirty == Some(true);
                    p.pte_writable = p.entry_writable && !p.ro && !p.wp && tracked;
                    p.soft_dirty = None;
                }
                p.held = false;
                p.exclusive_entry = false;
                p.mapped = true;
                Expect::Value(p.value)
            }
            // The conversion takes the page for writing (a write fault
            // where the PTE is not writable), and keeps soft-dirty.
            Step::Convert { .. } => {
                p.held = true;
                p.exclusive_entry = true;
                p.soft_dirty = Some(true);
                p.mapped = true;
                p.entry_writable = true;
                p.pte_writable = false;
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
            // It makes a writable entry readable; whether mprotect makes a
            // PTE writable again is its own choice.
            Step::Protect { ro, .. } => {
                p.ro = ro;
                p.held &= !ro;
                p.entry_writable &= !ro;
                p.pte_writable = false;
                Expect::Done
            }
            // MADV_DONTNEED: a zero page next time, the device revoked, the
            // entry (and its uffd-wp bit) gone.
            Step::Dontneed { .. } => {
                p.value = 0;
                p.held = false;
                p.exclusive_entry = false;
                p.soft_dirty = None;
                p.mapped = false;
                p.wp = false;
                p.pte_writable = false;
                Expect::Done
            }
            // It write-protects every PTE for soft-dirty tracking.
            Step::ClearSoftDirty => {
                self.sd_tracking = true;
                for q in &mut self.pages {
                    q.soft_dirty = Some(false);
                    q.pte_writable = false;
                }
                Expect::Done
            }
            // MADV_PAGEOUT skips a device-exclusive entry; a page it
            // reclaims keeps its value and its uffd-wp bit (in the swap
            // entry), and comes back from swap in a PTE of the kernel's
            // choice.
            Step::Pageout { .. } => {
                p.pte_writable = false;
                Expect::Done
            }
            Step::UffdWp { on, .. } => {
                p.wp = on;
                p.pte_writable = false;
                Expect::Done
            }
            Step::MemslotDelete | Step::MemslotAdd => {
                self.slots_deleted = matches!(step, Step::MemslotDelete);
                Expect::Done
            }
            // Migration keeps the value, uffd-wp and a set soft-dirty bit
            // (a dirty migration entry may set it: pte_mkdirty does on
            // x86); a device-exclusive entry comes back as a present PTE,
            // its device revoked by the migration's invalidation. A page
            // that could not be moved is put back by the caller.
            Step::Migrate { .. } => {
                if p.soft_dirty == Some(false) {
                    p.soft_dirty = None;
                }
                p.exclusive_entry = false;
                p.pte_writable = false;
                Expect::Done
            }
            // Every increment lands (each guest access takes the page back
            // from the device); the vCPU's read at the end restores the
            // last conversion's entry, if the guest left one.
            Step::Race { commands, .. } => {
                p.value = p.value.wrapping_add(commands as u64 * RACE_LOOPS as u64);
                p.held = false;
                p.exclusive_entry = false;
                p.soft_dirty = None;
                p.mapped = true;
                p.pte_writable = false;
                Expect::Value(p.value)
            }
            // Another mapping, another process: nothing here changes.
            Step::HugetlbConvert => Expect::Refused,
            // Fork copies every entry: a device-exclusive one is restored
            // first (its device loses it to the fork's invalidation of the
            // whole range, which `observe` accepts), and every PTE is
            // write-protected for COW. The child reads the current value.
            Step::ForkRead { .. } => {
                let value = p.value;
                for q in &mut self.pages {
                    if q.exclusive_entry {
                        q.exclusive_entry = false;
                        q.soft_dirty = None;
                    }
                    q.pte_writable = false;
                }
                Expect::Value(value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_holds_a_page_until_a_cpu_touches_it() {
        let mut m = Model::new(2, 1, true, Migration::All);
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
        let mut m = Model::new(2, 2, true, Migration::All);
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
