//! The device's event stream as an event-manager subscriber, so the VMM's
//! loop sees notifier events beside vCPU and device events.

use std::fs::File;
use std::os::unix::io::AsRawFd;

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};

use super::{read_ready_events, NotifierEvent};

/// Reads the device's event records when its file is readable and passes
/// each to the handler. Stops watching the file on error or hang-up.
pub struct NotifierSubscriber<H: FnMut(&NotifierEvent)> {
    file: File,
    handler: H,
    errors: u64,
}

impl<H: FnMut(&NotifierEvent)> NotifierSubscriber<H> {
    pub(super) fn new(file: File, handler: H) -> Self {
        NotifierSubscriber {
            file,
            handler,
            errors: 0,
        }
    }

    /// Read errors seen so far (the subscriber unregisters on the first).
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Reads and dispatches everything ready now; returns how many events.
    pub fn drain(&mut self) -> usize {
        let mut total = 0;
        loop {
            match read_ready_events(self.file.as_raw_fd(), 256) {
                Ok(events) if events.is_empty() => return total,
                Ok(events) => {
                    total += events.len();
                    events.iter().for_each(&mut self.handler);
                }
                Err(e) => {
                    log::warn!("{e}");
                    self.errors += 1;
                    return total;
                }
            }
        }
    }
}

impl<H: FnMut(&NotifierEvent)> MutEventSubscriber for NotifierSubscriber<H> {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let before = self.errors;
        if events.event_set().contains(EventSet::IN) {
            self.drain();
        }
        let broken = events
            .event_set()
            .intersects(EventSet::ERROR | EventSet::HANG_UP);
        if broken || self.errors != before {
            if let Err(e) = ops.remove(Events::new(&self.file, EventSet::IN)) {
                log::warn!("mmuvisor events: cannot unregister: {e:?}");
            }
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.file, EventSet::IN)) {
            log::warn!("mmuvisor events: cannot register: {e:?}");
            self.errors += 1;
        }
    }
}
