//! Bare payload ELF loading: validated header and program headers (with
//! bounds checks), PT_LOAD segments copied into guest RAM.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::arch::x86_64::layout::{HIMEM_START, PAYLOAD_IMAGE_END};

/// Errors validating or loading a payload ELF. Each displays as one line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("payload is not an ELF file")]
    NotElf,
    #[error("payload ELF is truncated ({0})")]
    Truncated(&'static str),
    #[error("payload ELF is not 64-bit little-endian")]
    NotElf64,
    #[error("payload ELF is not for x86_64 (e_machine {0})")]
    Machine(u16),
    #[error("payload ELF is not ET_EXEC (e_type {0}); link it with -static -no-pie")]
    NotExec(u16),
    #[error("payload ELF has a bad program header size {0}")]
    PhentSize(u16),
    #[error("payload ELF has no PT_LOAD segment")]
    NoLoad,
    #[error("payload segment {start:#x}..{end:#x} is outside [{HIMEM_START:#x}, {PAYLOAD_IMAGE_END:#x})")]
    OutOfRange { start: u64, end: u64 },
    #[error("payload segment at {0:#x} has p_vaddr != p_paddr")]
    VaddrMismatch(u64),
    #[error("payload segment at {0:#x} has p_filesz > p_memsz")]
    FileszTooBig(u64),
    #[error("payload entry point {0:#x} is not inside a loaded segment")]
    EntryOutside(u64),
    #[error("cannot write the payload into guest memory: {0}")]
    Write(String),
}

type Result<T> = std::result::Result<T, PayloadError>;

const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// One PT_LOAD segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub gpa: u64,
    pub offset: u64,
    pub filesz: u64,
    pub memsz: u64,
}

/// A validated payload image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadImage {
    pub entry: u64,
    pub segments: Vec<Segment>,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Validates a payload ELF against the payload ABI.
pub fn parse(elf: &[u8]) -> Result<PayloadImage> {
    if elf.len() < 4 || &elf[..4] != b"\x7fELF" {
        return Err(PayloadError::NotElf);
    }
    if elf.len() < EHDR_SIZE {
        return Err(PayloadError::Truncated("ELF header"));
    }
    if elf[4] != 2 || elf[5] != 1 {
        return Err(PayloadError::NotElf64);
    }
    let hdr = |o| u16_at(elf, o).ok_or(PayloadError::Truncated("ELF header"));
    let e_type = hdr(16)?;
    let e_machine = hdr(18)?;
    if e_machine != EM_X86_64 {
        return Err(PayloadError::Machine(e_machine));
    }
    if e_type != ET_EXEC {
        return Err(PayloadError::NotExec(e_type));
    }
    let entry = u64_at(elf, 24).ok_or(PayloadError::Truncated("ELF header"))?;
    let phoff = u64_at(elf, 32).ok_or(PayloadError::Truncated("ELF header"))?;
    let phentsize = hdr(54)?;
    let phnum = hdr(56)?;
    if usize::from(phentsize) != PHDR_SIZE {
        return Err(PayloadError::PhentSize(phentsize));
    }
    phoff
        .checked_add(u64::from(phnum) * PHDR_SIZE as u64)
        .filter(|&e| e <= elf.len() as u64)
        .ok_or(PayloadError::Truncated("program headers"))?;
    let mut segments = Vec::new();
    for i in 0..usize::from(phnum) {
        let base = phoff as usize + i * PHDR_SIZE;
        let ph = &elf[base..base + PHDR_SIZE];
        let field = |o| u64_at(ph, o).ok_or(PayloadError::Truncated("program headers"));
        let p_type = u32_at(ph, 0).ok_or(PayloadError::Truncated("program headers"))?;
        if p_type != PT_LOAD {
            continue;
        }
        let (offset, vaddr, paddr, filesz, memsz) =
            (field(8)?, field(16)?, field(24)?, field(32)?, field(40)?);
        if memsz == 0 {
            continue;
        }
        if filesz > memsz {
            return Err(PayloadError::FileszTooBig(paddr));
        }
        if vaddr != paddr {
            return Err(PayloadError::VaddrMismatch(paddr));
        }
        let end = paddr.checked_add(memsz).ok_or(PayloadError::OutOfRange {
            start: paddr,
            end: u64::MAX,
        })?;
        if paddr < HIMEM_START || end > PAYLOAD_IMAGE_END {
            return Err(PayloadError::OutOfRange { start: paddr, end });
        }
        if offset
            .checked_add(filesz)
            .is_none_or(|e| e > elf.len() as u64)
        {
            return Err(PayloadError::Truncated("segment data"));
        }
        segments.push(Segment {
            gpa: paddr,
            offset,
            filesz,
            memsz,
        });
    }
    if segments.is_empty() {
        return Err(PayloadError::NoLoad);
    }
    if !segments
        .iter()
        .any(|s| entry >= s.gpa && entry < s.gpa + s.memsz)
    {
        return Err(PayloadError::EntryOutside(entry));
    }
    Ok(PayloadImage { entry, segments })
}

/// Validates and loads a payload; returns its entry point.
pub fn load(mem: &GuestMemoryMmap, elf: &[u8]) -> Result<u64> {
    let image = parse(elf)?;
    for s in &image.segments {
        let data = &elf[s.offset as usize..(s.offset + s.filesz) as usize];
        mem.write_slice(data, GuestAddress(s.gpa))
            .map_err(|e| PayloadError::Write(e.to_string()))?;
        let zeros = vec![0u8; (s.memsz - s.filesz) as usize];
        mem.write_slice(&zeros, GuestAddress(s.gpa + s.filesz))
            .map_err(|e| PayloadError::Write(e.to_string()))?;
    }
    Ok(image.entry)
}

/// Builds a minimal ELF64 x86_64 ET_EXEC with one PT_LOAD of `code` at `gpa`
/// (entry = `gpa`); used by benchmarks and tests.
pub fn minimal_elf(gpa: u64, code: &[u8], memsz: u64) -> Vec<u8> {
    let mut e = vec![0u8; EHDR_SIZE + PHDR_SIZE];
    e[..4].copy_from_slice(b"\x7fELF");
    e[4] = 2;
    e[5] = 1;
    e[6] = 1;
    e[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
    e[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
    e[20..24].copy_from_slice(&1u32.to_le_bytes());
    e[24..32].copy_from_slice(&gpa.to_le_bytes());
    e[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
    e[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    e[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    e[56..58].copy_from_slice(&1u16.to_le_bytes());
    let ph = EHDR_SIZE;
    let off = (EHDR_SIZE + PHDR_SIZE) as u64;
    e[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
    e[ph + 4..ph + 8].copy_from_slice(&5u32.to_le_bytes());
    e[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
    e[ph + 16..ph + 24].copy_from_slice(&gpa.to_le_bytes());
    e[ph + 24..ph + 32].copy_from_slice(&gpa.to_le_bytes());
    e[ph + 32..ph + 40].copy_from_slice(&(code.len() as u64).to_le_bytes());
    e[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
    e.extend_from_slice(code);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_elf(gpa: u64, code: &[u8], memsz: u64) -> Vec<u8> {
        minimal_elf(gpa, code, memsz)
    }

    #[test]
    fn accepts_valid_payload() {
        let elf = tiny_elf(0x100000, &[0xf4], 0x2000);
        let img = parse(&elf).unwrap();
        assert_eq!(img.entry, 0x100000);
        assert_eq!(img.segments[0].memsz, 0x2000);
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 4 << 20)]).unwrap();
        mem.write_obj(0xffu8, GuestAddress(0x100001)).unwrap();
        assert_eq!(load(&mem, &elf).unwrap(), 0x100000);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x100000)).unwrap(), 0xf4);
        assert_eq!(
            mem.read_obj::<u8>(GuestAddress(0x100001)).unwrap(),
            0,
            "bss zeroed"
        );
    }

    #[test]
    fn rejects_bad_payloads() {
        let good = tiny_elf(0x100000, &[0x90; 16], 16);
        assert_eq!(parse(b"hello"), Err(PayloadError::NotElf));
        assert_eq!(
            parse(&good[..40]),
            Err(PayloadError::Truncated("ELF header"))
        );
        assert_eq!(
            parse(&good[..100]),
            Err(PayloadError::Truncated("program headers"))
        );
        assert_eq!(
            parse(&good[..good.len() - 1]),
            Err(PayloadError::Truncated("segment data"))
        );
        let mut b = good.clone();
        b[4] = 1;
        assert_eq!(parse(&b), Err(PayloadError::NotElf64));
        let mut b = good.clone();
        b[18] = 183;
        assert_eq!(parse(&b), Err(PayloadError::Machine(183)));
        let mut b = good.clone();
        b[16] = 3;
        assert_eq!(parse(&b), Err(PayloadError::NotExec(3)));
        assert!(matches!(
            parse(&tiny_elf(0x80000, &[0x90], 1)),
            Err(PayloadError::OutOfRange { .. })
        ));
        assert!(matches!(
            parse(&tiny_elf(0x17ff00, &[0x90], 0x200)),
            Err(PayloadError::OutOfRange { .. })
        ));
        assert!(matches!(
            parse(&tiny_elf(0x100000, &[0x90], u64::MAX)),
            Err(PayloadError::OutOfRange { .. })
        ));
        let mut b = good.clone();
        b[24..32].copy_from_slice(&0x170000u64.to_le_bytes());
        assert_eq!(parse(&b), Err(PayloadError::EntryOutside(0x170000)));
        let mut b = good.clone();
        b[64 + 32..64 + 40].copy_from_slice(&100u64.to_le_bytes());
        assert_eq!(parse(&b), Err(PayloadError::FileszTooBig(0x100000)));
        let mut b = good.clone();
        b[64..68].copy_from_slice(&6u32.to_le_bytes());
        assert_eq!(parse(&b), Err(PayloadError::NoLoad));
        let mut b = good;
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse(&b), Err(PayloadError::Truncated("program headers")));
    }
}
