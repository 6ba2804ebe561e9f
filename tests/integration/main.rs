fn main() {}
mod drill_ktap;
mod drill_secondary_mmu;
mod linux_loader;
