//! Integration tests: each file is a module.

mod drill_baseline;
mod drill_ktap;
mod drill_secondary_mmu;
mod lab;
mod lab_drills;
mod lab_kmod;
mod lab_poweroff;
mod linux_loader;
mod payloads;
mod run_bad_input;
mod run_payload;
mod run_util;
mod run_vmm_api;
