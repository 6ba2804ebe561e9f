//! Reports of drill runs: KTAP for machines, JSON, SVG timelines.

pub mod cluster;
pub mod json;
pub mod ktap;
pub mod kvm_text;
pub mod time_axis;
pub mod timeline;
