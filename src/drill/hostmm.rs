//! Host-side mm helpers for drills: a forked reader, smaps, KSM settings.

use std::io;

/// MADV_COLLAPSE (Linux 6.1).
pub const MADV_COLLAPSE: i32 = 25;

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A forked child of the VMM that, when asked, reads the u64 at an address
/// through its own (COW-shared) mapping and reports it. The child only
/// calls async-signal-safe functions.
pub struct ForkedReader {
    pid: libc::pid_t,
    go: libc::c_int,
    result: libc::c_int,
}

impl ForkedReader {
    pub fn spawn(hva: u64) -> io::Result<Self> {
        let mut go = [0; 2];
        let mut res = [0; 2];
        // SAFETY: arrays of two ints for pipe2.
        cvt(unsafe { libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC) })?;
        // SAFETY: as above.
        if let Err(e) = cvt(unsafe { libc::pipe2(res.as_mut_ptr(), libc::O_CLOEXEC) }) {
            // SAFETY: closing our own fds.
            unsafe { libc::close(go[0]) };
            // SAFETY: as above.
            unsafe { libc::close(go[1]) };
            return Err(e);
        }
        // SAFETY: the child below only uses read/write/_exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let mut b = [0u8; 1];
            // SAFETY: child: blocking read of one byte from our pipe.
            let n = unsafe { libc::read(go[0], b.as_mut_ptr() as *mut libc::c_void, 1) };
            if n == 1 {
                // SAFETY: hva is mapped in the child (inherited, MADV_DOFORK).
                let v = unsafe { std::ptr::read_volatile(hva as *const u64) }.to_ne_bytes();
                // SAFETY: writing 8 bytes from a stack buffer.
                unsafe { libc::write(res[1], v.as_ptr() as *const libc::c_void, 8) };
                // SAFETY: wait for the parent's second byte (exit).
                unsafe { libc::read(go[0], b.as_mut_ptr() as *mut libc::c_void, 1) };
            }
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: closing the child's ends in the parent.
        unsafe {
            libc::close(go[0]);
            libc::close(res[1]);
        }
        if pid < 0 {
            let e = io::Error::last_os_error();
            // SAFETY: our own fds.
            unsafe {
                libc::close(go[1]);
                libc::close(res[0]);
            }
            return Err(e);
        }
        Ok(ForkedReader {
            pid,
            go: go[1],
            result: res[0],
        })
    }

    /// Asks the child for the value it sees now.
    pub fn read(&mut self) -> io::Result<u64> {
        let b = [1u8];
        // SAFETY: one byte from a stack buffer to our pipe.
        cvt(unsafe { libc::write(self.go, b.as_ptr() as *const libc::c_void, 1) } as libc::c_int)?;
        let mut v = [0u8; 8];
        // SAFETY: reading into a stack buffer of 8 bytes.
        let n = unsafe { libc::read(self.result, v.as_mut_ptr() as *mut libc::c_void, 8) };
        if n != 8 {
            return Err(io::Error::other("the forked child did not report"));
        }
        Ok(u64::from_ne_bytes(v))
    }
}

impl Drop for ForkedReader {
    fn drop(&mut self) {
        let b = [2u8];
        // SAFETY: our fds and our child; best effort.
        unsafe {
            libc::write(self.go, b.as_ptr() as *const libc::c_void, 1);
            libc::close(self.go);
            libc::close(self.result);
            let mut st = 0;
            if libc::waitpid(self.pid, &mut st, libc::WNOHANG) == 0 {
                std::thread::sleep(std::time::Duration::from_millis(20));
                if libc::waitpid(self.pid, &mut st, libc::WNOHANG) == 0 {
                    libc::kill(self.pid, libc::SIGKILL);
                    libc::waitpid(self.pid, &mut st, 0);
                }
            }
        }
    }
}

/// AnonHugePages (kB) of the VMA that contains `hva`.
pub fn anon_huge_kb(hva: u64) -> Option<u64> {
    crate::smaps::vma_field_kb(hva, "AnonHugePages")
        .ok()
        .flatten()
}

/// Whether THP may be used (`enabled` is not `[never]`).
pub fn thp_available() -> Result<(), String> {
    match std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled") {
        Ok(s) if s.contains("[never]") => {
            Err("transparent hugepages are disabled ([never])".into())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(format!("no transparent hugepage support: {e}")),
    }
}

const KSM: &str = "/sys/kernel/mm/ksm";

/// Turns ksmd on (fast scanning) and restores the old settings on drop.
pub struct KsmGuard {
    saved: Vec<(String, String)>,
}

impl KsmGuard {
    pub fn start() -> Result<Self, String> {
        let mut g = KsmGuard { saved: Vec::new() };
        for (k, v) in [
            ("sleep_millisecs", "10"),
            ("pages_to_scan", "4000"),
            ("run", "1"),
        ] {
            let p = format!("{KSM}/{k}");
            let old = std::fs::read_to_string(&p).map_err(|e| format!("no KSM ({p}: {e})"))?;
            std::fs::write(&p, v).map_err(|e| format!("cannot set {p}: {e}"))?;
            g.saved.push((p, old.trim().to_string()));
        }
        Ok(g)
    }
}

impl Drop for KsmGuard {
    fn drop(&mut self) {
        for (p, v) in self.saved.iter().rev() {
            let _ = std::fs::write(p, v);
        }
    }
}

/// Online NUMA nodes.
pub fn numa_nodes() -> Vec<i32> {
    let s = std::fs::read_to_string("/sys/devices/system/node/online").unwrap_or_default();
    let mut v = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
            v.extend(a..=b);
        }
    }
    v
}

/// /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h).
pub const KPF_DIRTY: u64 = 1 << 4;
pub const KPF_BUDDY: u64 = 1 << 10;
pub const KPF_MMAP: u64 = 1 << 11;
pub const KPF_ANON: u64 = 1 << 12;
pub const KPF_SWAPCACHE: u64 = 1 << 13;
pub const KPF_NOPAGE: u64 = 1 << 20;
pub const KPF_KSM: u64 = 1 << 21;

/// The folio flags of page frame `pfn` (root only).
pub fn kpageflags(pfn: u64) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open("/proc/kpageflags")?;
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, pfn * 8)?;
    Ok(u64::from_ne_bytes(b))
}

/// The set bits of a /proc/kpageflags word, by name ("lru active ...").
pub fn describe_kpageflags(flags: u64) -> String {
    const NAMES: [&str; 27] = [
        "locked",
        "error",
        "referenced",
        "uptodate",
        "dirty",
        "lru",
        "active",
        "slab",
        "writeback",
        "reclaim",
        "buddy",
        "mmap",
        "anon",
        "swapcache",
        "swapbacked",
        "compound_head",
        "compound_tail",
        "huge",
        "unevictable",
        "hwpoison",
        "nopage",
        "ksm",
        "thp",
        "offline",
        "zero_page",
        "idle",
        "pgtable",
    ];
    let set: Vec<&str> = (0..NAMES.len())
        .filter(|b| flags & (1 << b) != 0)
        .map(|b| NAMES[b])
        .collect();
    if set.is_empty() {
        "none".into()
    } else {
        set.join(" ")
    }
}

/// Clears the soft-dirty bits of this process's PTEs (clear_refs 4).
pub fn clear_soft_dirty() -> io::Result<()> {
    std::fs::write("/proc/self/clear_refs", "4")
}

/// Page faults this thread took that needed no I/O (getrusage
/// RUSAGE_THREAD ru_minflt): a write to a read-only PTE counts one.
pub fn thread_minor_faults() -> io::Result<i64> {
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid, writable rusage.
    cvt(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) })?;
    Ok(ru.ru_minflt)
}

/// Active swap devices (/proc/swaps after its header line).
pub fn swap_devices() -> Vec<String> {
    std::fs::read_to_string("/proc/swaps")
        .map(|s| s.lines().skip(1).map(|l| l.to_string()).collect())
        .unwrap_or_default()
}

/// A userfaultfd registered for write protection on one range
/// (include/uapi/linux/userfaultfd.h); closing it unregisters.
pub struct UffdWp {
    fd: std::os::fd::OwnedFd,
    start: u64,
    len: u64,
}

const UFFD_API: u64 = 0xaa;
const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;
const UFFDIO_WRITEPROTECT: libc::c_ulong = 0xc018_aa06;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;

impl UffdWp {
    /// userfaultfd(2) + UFFDIO_API + UFFDIO_REGISTER(MODE_WP) on `[start, start + len)`.
    pub fn register(start: u64, len: u64) -> io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall; a valid fd or -1 comes back.
        let raw =
            unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
        let raw = cvt(raw as libc::c_int)?;
        // SAFETY: raw is a fresh fd that nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        let u = UffdWp { fd, start, len };
        let mut api = [UFFD_API, 0, 0];
        u.ioctl(UFFDIO_API, api.as_mut_ptr())?;
        // struct uffdio_register { range { start, len }, mode, ioctls }
        let mut reg = [start, len, UFFDIO_REGISTER_MODE_WP, 0];
        u.ioctl(UFFDIO_REGISTER, reg.as_mut_ptr())?;
        Ok(u)
    }

    /// UFFDIO_WRITEPROTECT on the whole range: set (`wp`) or resolve.
    pub fn protect(&self, wp: bool) -> io::Result<()> {
        let mode = if wp { UFFDIO_WRITEPROTECT_MODE_WP } else { 0 };
        // struct uffdio_writeprotect { range { start, len }, mode }
        let mut arg = [self.start, self.len, mode];
        self.ioctl(UFFDIO_WRITEPROTECT, arg.as_mut_ptr())
    }

    fn ioctl(&self, req: libc::c_ulong, arg: *mut u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: `arg` points at a u64 array laid out as the uapi struct
        // of `req` and lives across the call.
        cvt(unsafe { libc::ioctl(self.fd.as_raw_fd(), req, arg) }).map(|_| ())
    }
}

/// move_pages(2) on this process: each page at `hvas` to `node`, or with
/// `node` None only where each page is. Returns the per-page status (a
/// node, or a negative errno).
pub fn move_pages(hvas: &[u64], node: Option<i32>) -> io::Result<Vec<i32>> {
    const MPOL_MF_MOVE: libc::c_int = 1 << 1;
    let mut pages: Vec<*mut libc::c_void> = hvas.iter().map(|&h| h as *mut libc::c_void).collect();
    let nodes: Vec<libc::c_int> = node.map(|n| vec![n; hvas.len()]).unwrap_or_default();
    let mut status = vec![-1 as libc::c_int; hvas.len()];
    // SAFETY: `pages`, `nodes` (or null) and `status` hold hvas.len() elements each.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_pages,
            0,
            hvas.len(),
            pages.as_mut_ptr(),
            if node.is_some() {
                nodes.as_ptr()
            } else {
                std::ptr::null()
            },
            status.as_mut_ptr(),
            if node.is_some() { MPOL_MF_MOVE } else { 0 },
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(status)
}

static WRITE_FAULTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// SIGSEGV/SIGBUS handler for [`guarded_write`]: notes the fault and steps
/// over the 3-byte `mov [rdi], rsi` that took it.
extern "C" fn skip_faulting_store(
    _sig: libc::c_int,
    _info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    WRITE_FAULTED.store(true, std::sync::atomic::Ordering::SeqCst);
    // SAFETY: the kernel passes a valid ucontext_t for SA_SIGINFO handlers;
    // the faulting instruction is the 3-byte store in guarded_write.
    unsafe {
        let uc = ctx.cast::<libc::ucontext_t>();
        (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] += 3;
    }
}

/// Stores `val` at `addr` from this process, the way any CPU access would;
/// returns whether the store faulted (SIGSEGV/SIGBUS: the PTE does not
/// allow it) instead of landing. Only for addresses mapped in this process.
pub fn guarded_write(addr: u64, val: u64) -> io::Result<bool> {
    use std::sync::atomic::Ordering;
    // SAFETY: an all-zero sigaction is valid; the fields are set below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = skip_faulting_store as *const () as usize;
    sa.sa_flags = libc::SA_SIGINFO;
    // SAFETY: plain libc call on a stack value.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: all-zero sigactions to receive the previous handlers.
    let mut old: [libc::sigaction; 2] = unsafe { std::mem::zeroed() };
    for (i, sig) in [libc::SIGSEGV, libc::SIGBUS].into_iter().enumerate() {
        // SAFETY: valid sigaction pointers; the handler only touches an
        // atomic and the interrupted context.
        cvt(unsafe { libc::sigaction(sig, &sa, &mut old[i]) })?;
    }
    WRITE_FAULTED.store(false, Ordering::SeqCst);
    // SAFETY: `addr` is mapped in this process (the caller's guest RAM);
    // if the PTE refuses the store, the handler above skips it.
    unsafe {
        std::arch::asm!(
            "mov qword ptr [rdi], rsi",
            in("rdi") addr,
            in("rsi") val,
            options(nostack),
        );
    }
    let faulted = WRITE_FAULTED.load(Ordering::SeqCst);
    for (i, sig) in [libc::SIGSEGV, libc::SIGBUS].into_iter().enumerate() {
        // SAFETY: restoring the handlers saved above.
        cvt(unsafe { libc::sigaction(sig, &old[i], std::ptr::null_mut()) })?;
    }
    Ok(faulted)
}

/// CPUs this process may run on (sched_getaffinity), in order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid cpu_set_t of the size passed.
    cvt(unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) })?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: i < CPU_SETSIZE, within the set.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect())
}

/// Lets the calling thread (and the threads it starts from now on) run on
/// `cpus` only.
pub fn set_this_thread_cpus(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: cpu < CPU_SETSIZE, within the set.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: set is a valid cpu_set_t of the size passed; 0 = this thread.
    cvt(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) })
        .map(|_| ())
}

/// Pins the calling thread (and the threads it starts from now on) to `cpu`.
pub fn pin_this_thread(cpu: usize) -> io::Result<()> {
    set_this_thread_cpus(&[cpu])
}

const MEMORY_BLOCKS: &str = "/sys/devices/system/memory";

fn memory_block_size() -> io::Result<u64> {
    let size = std::fs::read_to_string(format!("{MEMORY_BLOCKS}/block_size_bytes"))
        .map_err(|e| io::Error::new(io::ErrorKind::Unsupported, format!("{MEMORY_BLOCKS}: {e}")))?;
    u64::from_str_radix(size.trim(), 16)
        .ok()
        .filter(|&s| s >= 4096)
        .ok_or_else(|| io::Error::other(format!("block_size_bytes {size:?}")))
}

/// Frames the kernel cannot migrate out of a block: reserved (early boot
/// allocations, the memmap at the top of a node), slab, page tables.
const KPF_UNMOVABLE: u64 = (1 << 32) | (1 << 7) | (1 << 26);

/// Whether the memory block holding `pfn` can go offline: in ZONE_MOVABLE
/// where there is one (elsewhere any kernel page in the block refuses it,
/// and kpageflags shows most of those as nothing), else not the first block
/// and within one zone; and no frame in it that kpageflags shows unmovable
/// (the memmap at the top of a node is reserved, even in ZONE_MOVABLE).
pub fn memory_block_offlinable(pfn: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(size) = memory_block_size() else {
        return false;
    };
    let block = pfn * 4096 / size;
    let zones = |b: u64| {
        std::fs::read_to_string(format!("{MEMORY_BLOCKS}/memory{b}/valid_zones"))
            .map(|z| z.trim().to_string())
            .unwrap_or_default()
    };
    let any_movable = (0..1024)
        .map_while(|b| {
            std::path::Path::new(&format!("{MEMORY_BLOCKS}/memory{b}"))
                .exists()
                .then(|| zones(b))
        })
        .any(|z| z == "Movable");
    let zone = zones(block);
    let ok_zone = if any_movable {
        zone == "Movable"
    } else {
        block != 0 && !zone.is_empty() && zone != "none"
    };
    if !ok_zone {
        return false;
    }
    let frames = size / 4096;
    let mut flags = vec![0u8; (frames * 8) as usize];
    let read = std::fs::File::open("/proc/kpageflags")
        .and_then(|f| f.read_exact_at(&mut flags, block * frames * 8));
    read.is_ok()
        && flags.chunks_exact(8).all(|c| {
            u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) & KPF_UNMOVABLE
                == 0
        })
}

/// Takes the memory block holding page frame `pfn` offline, which migrates
/// every page in it, and puts it online again; returns the block's number.
/// The kernel retries a page it cannot migrate until the writer gets a
/// signal, so the write runs in a child process that is killed after
/// `limit` (an error then). `Unsupported` where the kernel has no memory
/// blocks (no memory hot-remove).
pub fn offline_memory_block_of(pfn: u64, limit: std::time::Duration) -> io::Result<u64> {
    use std::process::{Command, Stdio};
    let block = pfn * 4096 / memory_block_size()?;
    let state = format!("{MEMORY_BLOCKS}/memory{block}/state");
    let mut child = Command::new("sh")
        .args(["-c", "echo offline > \"$0\"", &state])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if t0.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("memory block {block} did not go offline in {} s (a page in it would not migrate)", limit.as_secs()),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    if !status.success() {
        let mut why = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = io::Read::read_to_string(&mut e, &mut why);
        }
        return Err(io::Error::other(format!(
            "offline of memory block {block} failed: {}",
            why.trim()
        )));
    }
    std::fs::write(&state, "online")
        .map_err(|e| io::Error::other(format!("memory block {block} back online: {e}")))?;
    Ok(block)
}

/// Anonymous memory whose pages come from one NUMA node (mbind
/// MPOL_BIND), populated: it takes that node's free pages the allocator
/// would hand out next, so a page moved there afterwards lands elsewhere.
pub fn ballast_on_node(len: usize, node: i32) -> io::Result<crate::host_mapping::HostMapping> {
    const MPOL_BIND: libc::c_long = 2;
    let m = crate::host_mapping::HostMapping::anonymous(
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
    )?;
    let mask: u64 = 1 << node;
    // SAFETY: the range is our own fresh mapping; the node mask is one u64
    // of 64 bits, as maxnode says.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            m.as_ptr(),
            len,
            MPOL_BIND,
            &mask as *const u64,
            65usize,
            0usize,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // Small pages: they come from the per-CPU lists first, which hold the
    // frame a page moved off a node last freed. With THP on "always" (as in
    // Debian's kernels) the ballast would take 2 MiB pages from the buddy
    // allocator only, and the next page moved there would land on that
    // same frame again, at the top of the node, where the node's own
    // allocations keep its memory block from going offline.
    m.madvise(0, len, libc::MADV_NOHUGEPAGE)?;
    for off in (0..len).step_by(4096) {
        // SAFETY: off < len, inside the writable mapping.
        unsafe { std::ptr::write_volatile(m.as_ptr().add(off), 1) };
    }
    Ok(m)
}

/// Empties every CPU's LRU batches: a folio in one is not on an LRU list
/// (reclaim cannot isolate it) and its reference keeps a just-unmapped
/// folio alive. move_pages(2) with no pages still runs lru_cache_disable().
/// Best effort: without NUMA nothing is drained.
pub fn drain_lru_batches() {
    let _ = move_pages(&[], Some(0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_write_faults_on_a_read_only_page_and_lands_on_a_writable_one() {
        let page = crate::host_mapping::HostMapping::private(4096).unwrap();
        let p = page.as_ptr().cast::<libc::c_void>();
        assert!(!guarded_write(p as u64, 7).unwrap());
        // SAFETY: p is our page.
        assert_eq!(unsafe { std::ptr::read_volatile(p as *const u64) }, 7);
        // SAFETY: p is our page.
        assert_eq!(unsafe { libc::mprotect(p, 4096, libc::PROT_READ) }, 0);
        assert!(guarded_write(p as u64, 9).unwrap());
        // SAFETY: p is our page, readable.
        assert_eq!(unsafe { std::ptr::read_volatile(p as *const u64) }, 7);
    }

    #[test]
    fn forked_reader_sees_its_cow_copy() {
        let mut v = Box::new(5u64);
        let hva = &mut *v as *mut u64 as u64;
        let mut child = ForkedReader::spawn(hva).expect("fork");
        // SAFETY: our own box.
        unsafe { std::ptr::write_volatile(hva as *mut u64, 6) };
        assert_eq!(child.read().expect("child"), 5);
        assert_eq!(*v, 6);
    }

    #[test]
    fn parses_node_list() {
        assert!(
            !numa_nodes().is_empty()
                || !std::path::Path::new("/sys/devices/system/node/online").exists()
        );
    }
}
