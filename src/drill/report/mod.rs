//! Reports of drill runs: KTAP for machines, JSON, SVG timelines.

pub mod baseline;
pub mod cluster;
pub mod json;
pub mod json_value;
pub mod ktap;
pub mod kvm_text;
pub mod time_axis;
pub mod timeline;
