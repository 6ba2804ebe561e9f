//! The ABI between mmuvisor and its bare payload guests (docs/design.md,
//! "Payload ABI"), written once for both sides: `guest/` (no_std, in the
//! guest) and the VMM (on the host).
#![no_std]

pub mod interp;
pub mod layout;
pub mod payloads;
pub mod ucall;
