//! Reports of drill runs: KTAP for machines, JSON, SVG timelines.

pub mod baseline;
pub mod cluster;
pub mod json;
pub mod json_value;
pub mod ktap;
pub mod kvm_text;
pub mod time_axis;
pub mod timeline;

/// The kernel the drills ran on: `uname -r`, and in the lab what the lab
/// booted (Debian's package and version, or the built kernel's name).
pub fn kernel_words() -> (String, Option<String>) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let lab = std::env::var(crate::lab::session::KERNEL_ENV)
        .ok()
        .filter(|s| !s.is_empty());
    (release, lab)
}
