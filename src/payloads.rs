//! Built-in payload guests: ELF images built from guest/ by build.rs.

/// (name, ELF image) of every payload in mmuvisor_abi::payloads::NAMES.
const PAYLOADS: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/payloads.rs"));

/// The ELF bytes of a built-in payload.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    PAYLOADS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, elf)| *elf)
}

/// Names of the built-in payloads.
pub fn names() -> &'static [&'static str] {
    mmuvisor_abi::payloads::NAMES
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmuvisor_abi::layout::{PAYLOAD_IMAGE_END, PAYLOAD_IMAGE_START};

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
                (PAYLOAD_IMAGE_START..PAYLOAD_IMAGE_END).contains(&entry),
                "{name}: entry {entry:#x}"
            );
        }
        assert!(builtin("no-such-payload").is_none());
    }
}
