fn main() {}
mod drill_ktap;
mod drill_secondary_mmu;
