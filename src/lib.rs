//! mmuvisor: a minimal KVM hypervisor for end-to-end tests of KVM's
//! secondary MMU against device-exclusive pages. See docs/design.md.

pub mod arch;
pub(crate) mod bench;
pub mod clock;
pub mod commands;
pub(crate) mod devices;
pub mod drill;
pub mod exit_code;
pub mod guest_memory;
pub(crate) mod host;
pub mod host_mapping;
pub mod lab;
pub mod loader;
pub mod logger;
pub mod memcg;
pub mod notifier_client;
pub(crate) mod pagemap;
pub mod payloads;
pub mod secondary_mmu;
pub mod size;
pub(crate) mod smaps;
pub mod vcpu;
pub mod vmm;
