//! The payloads `guest/src/bin/` builds and the VMM embeds, by name.

/// Names of the built-in payloads (binary names in guest/src/bin/).
pub const NAMES: &[&str] = &[
    "hello",
    "exit-code",
    "smp",
    "mem-pattern",
    "interp",
    "triple-fault",
    "bad-port",
];
