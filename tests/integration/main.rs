fn main() {}
mod drill_secondary_mmu;
