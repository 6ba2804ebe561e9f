//! The `interp` payload's command word (docs/design.md, "The interp
//! payload"): each vCPU reports its last result in a SYNC and executes the
//! word the host replies with: op (bits 63..56), page (55..32), arg (31..0).

/// Operations; the value is the op field of the command word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Stop; the vCPU ends with DONE.
    Exit = 0,
    /// Result: word 0 of the page.
    Read = 1,
    /// Word 0 := arg.
    Write = 2,
    /// Locked add of arg to word 0; result: the old value.
    AtomicAdd = 3,
    /// arg times: word 0 += 1 (plain load and store).
    IncLoop = 4,
    /// arg times: locked increment of word 0.
    AtomicIncLoop = 5,
    /// Every word i := fill_word(arg, i).
    Fill = 6,
    /// Result: how many words differ from fill_word(arg, i).
    Check = 7,
    /// FILL of arg pages from page, each seeded with its page index.
    FillRange = 8,
    /// CHECK of arg pages from page, each against its page index.
    CheckRange = 9,
}

impl Op {
    /// The op an op field names, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Op::Exit,
            1 => Op::Read,
            2 => Op::Write,
            3 => Op::AtomicAdd,
            4 => Op::IncLoop,
            5 => Op::AtomicIncLoop,
            6 => Op::Fill,
            7 => Op::Check,
            8 => Op::FillRange,
            9 => Op::CheckRange,
            _ => return None,
        })
    }

    /// How many pages from `page` the command touches.
    pub fn span(self, arg: u32) -> u64 {
        match self {
            Op::FillRange | Op::CheckRange => arg as u64,
            _ => 1,
        }
    }
}

/// Largest page index a command word can name.
pub const MAX_PAGE: u32 = 0xff_ffff;

/// Packs op, page and arg into a command word.
pub const fn encode(op: Op, page: u32, arg: u32) -> u64 {
    ((op as u64) << 56) | (((page & MAX_PAGE) as u64) << 32) | arg as u64
}

/// Unpacks a command word: (op byte, page, arg).
pub const fn decode(word: u64) -> (u8, u32, u32) {
    (
        (word >> 56) as u8,
        ((word >> 32) as u32) & MAX_PAGE,
        word as u32,
    )
}

/// The word FILL writes at index `i` of a page seeded with `seed`.
pub const fn fill_word(seed: u32, i: u64) -> u64 {
    ((seed as u64) << 32) ^ i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let w = encode(Op::IncLoop, 0x12345, 0xdead_beef);
        assert_eq!(decode(w), (4, 0x12345, 0xdead_beef));
        assert_eq!(encode(Op::Exit, 0, 0), 0);
        for code in 0..=255u8 {
            if let Some(op) = Op::from_code(code) {
                assert_eq!(op as u8, code);
            }
        }
        assert_eq!(Op::from_code(10), None);
    }
}
