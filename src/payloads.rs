//! Built-in payloads. TEMPORARY STUB from the vmm branch so that `run` compiles;
//! the guest branch replaces this file.

/// The ELF bytes of a built-in payload.
pub fn builtin(_name: &str) -> Option<&'static [u8]> {
    None
}

/// Names of the built-in payloads.
pub fn names() -> &'static [&'static str] {
    &[]
}
