//! A simulated `interp` guest for proving that drills can fail: the guest
//! "CPU" accesses guest RAM through a model of a secondary MMU that either
//! follows the host page tables (like a correct KVM) or keeps the page it
//! first mapped and ignores every invalidation (a broken KVM).

use std::collections::{BTreeMap, VecDeque};

use crate::clock::now_ns;
use crate::drill::guest::{
    fill_word, page_gpa, Cmd, GuestError, InterpGuest, Op, SyncReport, PAGE_SIZE,
};
use crate::guest_memory::GuestRegion;
use crate::host_mapping::HostMapping;

const WORDS: usize = (PAGE_SIZE / 8) as usize;

pub struct SimGuest {
    hva: u64,
    size: u64,
    vcpus: usize,
    /// Model of a secondary MMU that never drops a mapping: a private
    /// snapshot of each page taken at its first access.
    stale: Option<BTreeMap<u64, Vec<u64>>>,
    queue: VecDeque<SyncReport>,
    finished: bool,
    _mem: HostMapping,
}

impl SimGuest {
    /// `stale_mmu`: ignore invalidations (the broken secondary MMU).
    pub fn new(vcpus: usize, size: u64, stale_mmu: bool) -> Result<Self, GuestError> {
        let mem = HostMapping::private(size as usize)
            .map_err(|e| GuestError::Vmm(format!("mmap: {e}")))?;
        let queue = (0..vcpus)
            .map(|vcpu| SyncReport {
                vcpu,
                stage: 0,
                result: 0,
                time_ns: now_ns(),
            })
            .collect();
        Ok(SimGuest {
            hva: mem.addr(),
            _mem: mem,
            size,
            vcpus,
            stale: stale_mmu.then(BTreeMap::new),
            queue,
            finished: false,
        })
    }

    fn word_ptr(&self, page: u64, i: usize) -> *mut u64 {
        (self.hva + page_gpa(page) + (i as u64) * 8) as *mut u64
    }

    fn load(&mut self, page: u64, i: usize) -> u64 {
        if let Some(map) = self.stale.as_mut() {
            let base = self.hva + page_gpa(page);
            let snap = map.entry(page).or_insert_with(|| {
                (0..WORDS)
                    // SAFETY: inside the mapping; plain memory.
                    .map(|k| unsafe {
                        std::ptr::read_volatile((base + k as u64 * 8) as *const u64)
                    })
                    .collect()
            });
            return snap[i];
        }
        // SAFETY: the page was checked to lie in the mapping.
        unsafe { std::ptr::read_volatile(self.word_ptr(page, i)) }
    }

    fn store(&mut self, page: u64, i: usize, v: u64) {
        if self.stale.is_some() {
            self.load(page, i);
            if let Some(snap) = self.stale.as_mut().and_then(|m| m.get_mut(&page)) {
                snap[i] = v;
            }
            return;
        }
        // SAFETY: as load.
        unsafe { std::ptr::write_volatile(self.word_ptr(page, i), v) }
    }

    fn exec(&mut self, cmd: Cmd) -> Result<u64, GuestError> {
        let pages = (self.size - page_gpa(0)) / PAGE_SIZE;
        let span = match cmd.op {
            Op::FillRange(n) | Op::CheckRange(n) => n as u64,
            _ => 1,
        };
        if cmd.page + span > pages {
            return Err(GuestError::Stopped(format!(
                "guest ASSERT: page {} outside RAM",
                cmd.page
            )));
        }
        let p = cmd.page;
        Ok(match cmd.op {
            Op::Exit => 0,
            Op::Read => self.load(p, 0),
            Op::Write(a) => {
                let old = self.load(p, 0);
                self.store(p, 0, a as u64);
                old
            }
            Op::AtomicAdd(a) => {
                let old = self.load(p, 0);
                self.store(p, 0, old.wrapping_add(a as u64));
                old
            }
            Op::IncLoop(n) | Op::AtomicIncLoop(n) => {
                let mut v = self.load(p, 0);
                for _ in 0..n {
                    v = v.wrapping_add(1);
                    self.store(p, 0, v);
                }
                v
            }
            Op::Fill(s) => {
                (0..WORDS).for_each(|i| self.store(p, i, fill_word(s, i as u64)));
                0
            }
            Op::Check(s) => (0..WORDS)
                .filter(|&i| self.load(p, i) != fill_word(s, i as u64))
                .count() as u64,
            Op::FillRange(n) => {
                for q in p..p + n as u64 {
                    (0..WORDS).for_each(|i| self.store(q, i, fill_word(q as u32, i as u64)));
                }
                0
            }
            Op::CheckRange(n) => {
                let mut bad = 0;
                for q in p..p + n as u64 {
                    bad += (0..WORDS)
                        .filter(|&i| self.load(q, i) != fill_word(q as u32, i as u64))
                        .count() as u64;
                }
                bad
            }
        })
    }
}

fn decode(word: u64) -> Option<Cmd> {
    let (code, page, arg) = mmuvisor_abi::interp::decode(word);
    let op = Op::from_code_arg(mmuvisor_abi::interp::Op::from_code(code)?, arg);
    Some(Cmd {
        op,
        page: page as u64,
    })
}

impl InterpGuest for SimGuest {
    fn nr_vcpus(&self) -> usize {
        self.vcpus
    }
    fn mem_size(&self) -> u64 {
        self.size
    }
    fn regions(&self) -> Vec<GuestRegion> {
        vec![GuestRegion {
            slot: 0,
            gpa: 0,
            hva: self.hva,
            size: self.size,
        }]
    }
    fn vm_fd(&self) -> Option<&kvm_ioctls::VmFd> {
        None
    }
    fn reply(&mut self, vcpu: usize, word: u64) -> Result<(), GuestError> {
        let cmd = decode(word)
            .ok_or_else(|| GuestError::Stopped(format!("guest ASSERT: unknown op in {word:#x}")))?;
        if cmd.op == Op::Exit {
            return Ok(());
        }
        let result = self.exec(cmd)?;
        self.queue.push_back(SyncReport {
            vcpu,
            stage: 1,
            result,
            time_ns: now_ns(),
        });
        Ok(())
    }
    fn next_sync(&mut self, timeout_ms: u64) -> Result<SyncReport, GuestError> {
        self.queue
            .pop_front()
            .ok_or(GuestError::Timeout(usize::MAX, timeout_ms))
    }
    fn finish(&mut self) -> Result<(), GuestError> {
        self.finished = true;
        Ok(())
    }
}
