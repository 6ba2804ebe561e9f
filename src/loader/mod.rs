//! Loading guest images into guest memory.

pub mod linux;
pub mod payload;
