fn main() {}
mod linux_loader;
