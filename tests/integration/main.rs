//! Integration tests: each file is a module.

mod drill_baseline;
mod drill_ktap;
mod drill_secondary_mmu;
mod kmod_basic;
mod kmod_bounds;
mod kmod_calls;
mod kmod_events;
mod kmod_fuzz;
mod kmod_memcg;
mod kmod_teardown;
mod kmod_thp;
mod kmod_util;
mod lab;
mod lab_drills;
mod lab_host;
mod lab_installed;
mod lab_kmod;
mod lab_matrix;
mod lab_poweroff;
mod lab_tree;
mod linux_loader;
mod payloads;
mod run_bad_input;
mod run_payload;
mod run_util;
mod run_vmm_api;
