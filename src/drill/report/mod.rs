//! Reports of drill runs: KTAP for machines, JSON, SVG timelines.

pub mod json;
pub mod ktap;
pub mod timeline;
