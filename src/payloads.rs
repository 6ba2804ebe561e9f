//! Built-in payload guests: ELF images built from guest/ by build.rs, and
//! the host side of the `interp` payload's command words.

macro_rules! payloads {
    ($($name:literal),* $(,)?) => {
        const PAYLOADS: &[(&str, &[u8])] = &[
            $(($name, include_bytes!(concat!(env!("OUT_DIR"), "/payload-", $name, ".elf")))),*
        ];
        const NAMES: &[&str] = &[$($name),*];
    };
}

payloads!(
    "hello",
    "exit-code",
    "smp",
    "mem-pattern",
    "interp",
    "triple-fault",
    "bad-port"
);

/// The ELF bytes of a built-in payload.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    PAYLOADS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, elf)| *elf)
}

/// Names of the built-in payloads.
pub fn names() -> &'static [&'static str] {
    NAMES
}

/// The `interp` payload's command words (docs/design.md).
pub mod interp {
    /// Operations; the value is the op field of the command word.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[repr(u8)]
    pub enum Op {
        Exit = 0,
        Read = 1,
        Write = 2,
        AtomicAdd = 3,
        IncLoop = 4,
        AtomicIncLoop = 5,
        Fill = 6,
        Check = 7,
        FillRange = 8,
        CheckRange = 9,
    }

    /// Largest page index a command word can name.
    pub const MAX_PAGE: u32 = 0xff_ffff;

    /// Packs op (bits 63..56), page (55..32) and arg (31..0).
    pub fn encode(op: Op, page: u32, arg: u32) -> u64 {
        ((op as u64) << 56) | (((page & MAX_PAGE) as u64) << 32) | arg as u64
    }

    /// Unpacks a command word: (op byte, page, arg).
    pub fn decode(word: u64) -> (u8, u32, u32) {
        (
            (word >> 56) as u8,
            ((word >> 32) as u32) & MAX_PAGE,
            word as u32,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_is_a_payload_elf() {
        assert_eq!(names().len(), PAYLOADS.len());
        for name in names() {
            let elf = builtin(name).expect("listed payload missing");
            assert_eq!(&elf[..4], b"\x7fELF", "{name}");
            assert_eq!(elf[4], 2, "{name}: not ELF64");
            assert_eq!(
                u16::from_le_bytes([elf[16], elf[17]]),
                2,
                "{name}: not ET_EXEC"
            );
            assert_eq!(
                u16::from_le_bytes([elf[18], elf[19]]),
                62,
                "{name}: not x86_64"
            );
            let entry = u64::from_le_bytes(elf[24..32].try_into().unwrap());
            assert!(
                (0x100000..0x180000).contains(&entry),
                "{name}: entry {entry:#x}"
            );
        }
        assert!(builtin("no-such-payload").is_none());
    }

    #[test]
    fn interp_words_round_trip() {
        let w = interp::encode(interp::Op::IncLoop, 0x12345, 0xdead_beef);
        assert_eq!(interp::decode(w), (4, 0x12345, 0xdead_beef));
        assert_eq!(interp::encode(interp::Op::Exit, 0, 0), 0);
    }
}
