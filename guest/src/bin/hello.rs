#![no_std]
#![no_main]
use mmuvisor_guest::{payload_main, println, Args};

fn hello(a: Args) -> u64 {
    println!("Hello from mmuvisor payload, vCPU {} of {}", a.vcpu, a.nr_vcpus);
    0
}
payload_main!(hello);
