//! The fuzz drill's steps: what one step does, its line in a replay file,
//! and the seeded generator of random sequences.

use std::fmt;

/// One host or guest operation on one data page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// vCPU `vcpu` writes `val` to the page's counter word.
    GuestWrite { page: u8, vcpu: u8, val: u32 },
    /// vCPU `vcpu` reads the counter word.
    GuestRead { page: u8, vcpu: u8 },
    /// The VMM writes the word through its own mapping.
    VmmWrite { page: u8, val: u32 },
    /// The VMM reads the word through its own mapping.
    VmmRead { page: u8 },
    /// The device makes the page exclusive (make_device_exclusive()).
    Convert { page: u8 },
    /// The device lets the page go (RELEASE).
    Release { page: u8 },
    /// The device reads the word through its own mapping.
    DevRead { page: u8 },
    /// The device adds `delta` to the word through its own mapping.
    DevAdd { page: u8, delta: u8 },
    /// mprotect(PROT_READ) (`ro`) or PROT_READ|PROT_WRITE on the page.
    Protect { page: u8, ro: bool },
    /// MADV_DONTNEED on the page.
    Dontneed { page: u8 },
    /// MADV_PAGEOUT on the page.
    Pageout { page: u8 },
    /// `4` to /proc/self/clear_refs: every page's soft-dirty bit cleared.
    ClearSoftDirty,
    /// UFFDIO_WRITEPROTECT on (`on`) or off for the page (registered with
    /// userfaultfd for write protection at its first).
    UffdWp { page: u8, on: bool },
    /// Every RAM memslot deleted (KVM must drop every mapping of them).
    MemslotDelete,
    /// The deleted memslots added back, same guest and host addresses.
    MemslotAdd,
    /// The VMM forks; the child reads the page's word through its own,
    /// COW-shared mapping and exits.
    ForkRead { page: u8 },
    /// move_pages(2): the page to the other NUMA node.
    Migrate { page: u8 },
    /// vCPU `vcpu` runs `commands` bursts of [`RACE_LOOPS`] atomic
    /// increments on the page while the host converts it again and again,
    /// the device reading it twice per hold; then the vCPU reads it.
    Race { page: u8, vcpu: u8, commands: u16 },
    /// make-exclusive on a page of a private hugetlb mapping, in a child
    /// process (`drill exclusive-hugetlb`'s probe): the kernel must refuse.
    HugetlbConvert,
}

/// Guest commands of a generated race step.
pub const RACE_COMMANDS: u16 = 8;
/// Atomic increments per race command.
pub const RACE_LOOPS: u32 = 20_000;

impl Step {
    /// The step with its race, if it is one, `times` as long (a race's
    /// outcome depends on timing: a longer one fails again more often).
    pub fn lengthened(self, times: u16) -> Step {
        match self {
            Step::Race {
                page,
                vcpu,
                commands,
            } => Step::Race {
                page,
                vcpu,
                commands: commands.saturating_mul(times),
            },
            other => other,
        }
    }

    pub fn page(self) -> u8 {
        match self {
            Step::GuestWrite { page, .. }
            | Step::GuestRead { page, .. }
            | Step::VmmWrite { page, .. }
            | Step::VmmRead { page }
            | Step::Convert { page }
            | Step::Release { page }
            | Step::DevRead { page }
            | Step::DevAdd { page, .. }
            | Step::Protect { page, .. }
            | Step::Dontneed { page }
            | Step::Pageout { page }
            | Step::UffdWp { page, .. }
            | Step::ForkRead { page }
            | Step::Migrate { page }
            | Step::Race { page, .. } => page,
            // Not about one page; page 0 always exists.
            Step::ClearSoftDirty
            | Step::MemslotDelete
            | Step::MemslotAdd
            | Step::HugetlbConvert => 0,
        }
    }
}

/// A replay file's line for the step: its kind, then its numbers.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Step::GuestWrite { page, vcpu, val } => write!(f, "guest-write {page} {vcpu} {val:#x}"),
            Step::GuestRead { page, vcpu } => write!(f, "guest-read {page} {vcpu}"),
            Step::VmmWrite { page, val } => write!(f, "vmm-write {page} {val:#x}"),
            Step::VmmRead { page } => write!(f, "vmm-read {page}"),
            Step::Convert { page } => write!(f, "convert {page}"),
            Step::Release { page } => write!(f, "release {page}"),
            Step::DevRead { page } => write!(f, "device-read {page}"),
            Step::DevAdd { page, delta } => write!(f, "device-add {page} {delta}"),
            Step::Protect { page, ro: true } => write!(f, "protect-ro {page}"),
            Step::Protect { page, ro: false } => write!(f, "protect-rw {page}"),
            Step::Dontneed { page } => write!(f, "dontneed {page}"),
            Step::Pageout { page } => write!(f, "pageout {page}"),
            Step::ClearSoftDirty => write!(f, "clear-soft-dirty"),
            Step::UffdWp { page, on: true } => write!(f, "uffd-wp-on {page}"),
            Step::UffdWp { page, on: false } => write!(f, "uffd-wp-off {page}"),
            Step::MemslotDelete => write!(f, "memslot-delete"),
            Step::MemslotAdd => write!(f, "memslot-add"),
            Step::HugetlbConvert => write!(f, "hugetlb-convert"),
            Step::ForkRead { page } => write!(f, "fork-read {page}"),
            Step::Migrate { page } => write!(f, "migrate {page}"),
            Step::Race {
                page,
                vcpu,
                commands,
            } => write!(f, "race {page} {vcpu} {commands}"),
        }
    }
}

fn num<T: TryFrom<u64>>(word: Option<&str>, what: &str) -> Result<T, String> {
    let w = word.ok_or_else(|| format!("missing {what}"))?;
    let v = match w.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => w.parse::<u64>(),
    }
    .map_err(|_| format!("{what} '{w}' is not a number"))?;
    T::try_from(v).map_err(|_| format!("{what} {w} is out of range"))
}

impl std::str::FromStr for Step {
    type Err = String;

    fn from_str(line: &str) -> Result<Step, String> {
        let mut w = line.split_whitespace();
        let kind = w.next().ok_or("empty step")?;
        let global = match kind {
            "clear-soft-dirty" => Some(Step::ClearSoftDirty),
            "memslot-delete" => Some(Step::MemslotDelete),
            "memslot-add" => Some(Step::MemslotAdd),
            "hugetlb-convert" => Some(Step::HugetlbConvert),
            _ => None,
        };
        if let Some(step) = global {
            return match w.next() {
                Some(extra) => Err(format!("unexpected '{extra}' after the step")),
                None => Ok(step),
            };
        }
        let page = num::<u8>(w.next(), "page")?;
        let step = match kind {
            "guest-write" => Step::GuestWrite {
                page,
                vcpu: num(w.next(), "vcpu")?,
                val: num(w.next(), "value")?,
            },
            "guest-read" => Step::GuestRead {
                page,
                vcpu: num(w.next(), "vcpu")?,
            },
            "vmm-write" => Step::VmmWrite {
                page,
                val: num(w.next(), "value")?,
            },
            "vmm-read" => Step::VmmRead { page },
            "convert" => Step::Convert { page },
            "release" => Step::Release { page },
            "device-read" => Step::DevRead { page },
            "device-add" => Step::DevAdd {
                page,
                delta: num(w.next(), "delta")?,
            },
            "protect-ro" => Step::Protect { page, ro: true },
            "protect-rw" => Step::Protect { page, ro: false },
            "dontneed" => Step::Dontneed { page },
            "pageout" => Step::Pageout { page },
            "uffd-wp-on" => Step::UffdWp { page, on: true },
            "uffd-wp-off" => Step::UffdWp { page, on: false },
            "fork-read" => Step::ForkRead { page },
            "migrate" => Step::Migrate { page },
            "race" => Step::Race {
                page,
                vcpu: num(w.next(), "vcpu")?,
                commands: num(w.next(), "commands")?,
            },
            other => return Err(format!("unknown step '{other}'")),
        };
        match w.next() {
            Some(extra) => Err(format!("unexpected '{extra}' after the step")),
            None => Ok(step),
        }
    }
}

/// splitmix64: small, seeded, the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The kinds of step the generator draws from, each with its weight.
const KINDS: [(&str, u64); 18] = [
    ("guest-write", 2),
    ("guest-read", 1),
    ("vmm-write", 1),
    ("vmm-read", 1),
    ("convert", 3),
    ("release", 1),
    ("device-read", 1),
    ("device-add", 1),
    ("protect", 1),
    ("dontneed", 1),
    ("clear-soft-dirty", 1),
    ("pageout", 1),
    ("uffd-wp", 1),
    ("memslot", 1),
    ("fork-read", 1),
    ("migrate", 1),
    ("race", 1),
    ("hugetlb-convert", 1),
];

/// Swarm testing (Groce et al., ISSTA 2012): each sequence draws from a
/// random half of the kinds (conversions always among them), so that the
/// few kinds a bug needs come many times in one sequence instead of being
/// diluted by all the others. A mask with fewer than three kinds uses all.
fn swarm(rng: &mut Rng) -> Vec<usize> {
    let mask = rng.next();
    let on: Vec<usize> = (0..KINDS.len())
        .filter(|&k| KINDS[k].0 == "convert" || mask & (1 << k) != 0)
        .collect();
    if on.len() < 3 {
        (0..KINDS.len()).collect()
    } else {
        on
    }
}

/// `len` random steps on `pages` pages with `vcpus` vCPUs, from the kinds
/// [`swarm`] picked for this sequence. Host steps that change the page's
/// state come as often as accesses, so that the device holds pages while
/// everything else happens to them.
pub fn generate(rng: &mut Rng, pages: u8, vcpus: u8, len: usize) -> Vec<Step> {
    let kinds = swarm(rng);
    let total: u64 = kinds.iter().map(|&k| KINDS[k].1).sum();
    (0..len)
        .map(|_| {
            let page = rng.below(pages as u64) as u8;
            let vcpu = rng.below(vcpus as u64) as u8;
            let val = (rng.next() as u32) | 1;
            let half = rng.below(2) == 0;
            let mut pick = rng.below(total);
            let kind = kinds
                .iter()
                .map(|&k| KINDS[k])
                .find(|&(_, w)| {
                    let hit = pick < w;
                    pick = pick.saturating_sub(w);
                    hit
                })
                .map_or("convert", |(name, _)| name);
            match kind {
                "guest-write" => Step::GuestWrite { page, vcpu, val },
                "guest-read" => Step::GuestRead { page, vcpu },
                "vmm-write" => Step::VmmWrite { page, val },
                "vmm-read" => Step::VmmRead { page },
                "release" => Step::Release { page },
                "device-read" => Step::DevRead { page },
                "device-add" => Step::DevAdd {
                    page,
                    delta: (val % 255 + 1) as u8,
                },
                "protect" => Step::Protect { page, ro: half },
                "dontneed" => Step::Dontneed { page },
                "clear-soft-dirty" => Step::ClearSoftDirty,
                "pageout" => Step::Pageout { page },
                "uffd-wp" => Step::UffdWp { page, on: half },
                "memslot" if half => Step::MemslotDelete,
                "memslot" => Step::MemslotAdd,
                "fork-read" => Step::ForkRead { page },
                "migrate" => Step::Migrate { page },
                "hugetlb-convert" => Step::HugetlbConvert,
                "race" => Step::Race {
                    page,
                    vcpu,
                    commands: RACE_COMMANDS,
                },
                _ => Step::Convert { page },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_reads_back_from_its_line() {
        let mut rng = Rng::new(7);
        let steps: Vec<Step> = (0..40).flat_map(|_| generate(&mut rng, 4, 2, 50)).collect();
        for s in &steps {
            assert_eq!(s.to_string().parse::<Step>(), Ok(*s), "{s}");
        }
        // All kinds occur, both ways where a kind has two.
        let kinds: std::collections::BTreeSet<_> = steps
            .iter()
            .map(|s| s.to_string().split(' ').next().unwrap().to_string())
            .collect();
        assert_eq!(kinds.len(), 21, "{kinds:?}");
    }

    #[test]
    fn a_sequence_draws_from_some_kinds_only() {
        let mut rng = Rng::new(11);
        let narrower = (0..20)
            .filter(|_| {
                let kinds: std::collections::HashSet<_> = generate(&mut rng, 4, 2, 200)
                    .iter()
                    .map(std::mem::discriminant)
                    .collect();
                kinds.len() < 16
            })
            .count();
        assert!(
            narrower >= 15,
            "{narrower} of 20 sequences used fewer kinds"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_steps() {
        let a = generate(&mut Rng::new(42), 4, 2, 50);
        let b = generate(&mut Rng::new(42), 4, 2, 50);
        let c = generate(&mut Rng::new(43), 4, 2, 50);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn bad_lines_say_why() {
        for (line, why) in [
            ("", "empty step"),
            ("fly 1", "unknown step 'fly'"),
            ("convert", "missing page"),
            ("convert x", "page 'x' is not a number"),
            ("convert 300", "page 300 is out of range"),
            ("convert 1 2", "unexpected '2'"),
            ("guest-write 1 0", "missing value"),
        ] {
            let e = line.parse::<Step>().unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
    }
}
