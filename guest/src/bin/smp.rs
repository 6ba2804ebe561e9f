#![no_std]
#![no_main]
//! Every vCPU reports in, meets the others at a barrier, adds arg0
//! (default 1000) to a shared counter with locked increments; vCPU 0 checks
//! the total and reports it.
use core::sync::atomic::{AtomicU64, Ordering};
use mmuvisor_guest::{barrier, guest_assert, payload_main, sync, Args};

static ARRIVED: AtomicU64 = AtomicU64::new(0);
static FINISHED: AtomicU64 = AtomicU64::new(0);
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn smp(a: Args) -> u64 {
    let count = if a.a[0] == 0 { 1000 } else { a.a[0] };
    sync(1, a.vcpu, a.nr_vcpus);
    barrier(&ARRIVED, a.nr_vcpus);
    for _ in 0..count {
        COUNTER.fetch_add(1, Ordering::SeqCst);
    }
    barrier(&FINISHED, a.nr_vcpus);
    if a.vcpu == 0 {
        let total = COUNTER.load(Ordering::SeqCst);
        guest_assert!(total == count * a.nr_vcpus, "counter {} != {} x {}", total, count, a.nr_vcpus);
        sync(2, total, 0);
    }
    0
}
payload_main!(smp);
