//! A small stderr logger for the `log` facade: -v info, -vv debug, -vvv trace.

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, record: &Record) {
        eprintln!(
            "mmuvisor: {}: {}",
            record.level().as_str().to_lowercase(),
            record.args()
        );
    }
    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// Installs the logger; warnings are always shown.
pub fn init(verbosity: u8) {
    let level = match verbosity {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
