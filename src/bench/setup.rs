//! `mmuvisor bench setup`: VM setup time and the SYNC round trip, each next
//! to a peer measured in the same run (process spawn of /bin/true; a raw
//! KVM_RUN port exit in a bare one-instruction VM). Prints figures only.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kvm_ioctls::{Kvm, VcpuExit};
use vm_memory::{Bytes, GuestAddress};

use super::percentile;
use crate::arch::x86_64::layout::HIMEM_START;
use crate::clock::now_ns;
use crate::commands::CmdResult;
use crate::guest_memory::{GuestMemory, Thp};
use crate::loader::payload::minimal_elf;
use crate::vmm::{GuestEventKind, Vm, VmConfig};

#[derive(clap::Args, Debug)]
pub struct SetupArgs {
    /// VM setups to time.
    #[arg(long, default_value_t = 20)]
    pub setups: usize,
    /// SYNC round trips to time.
    #[arg(long, default_value_t = 2000)]
    pub round_trips: usize,
}

/// `mov eax, 1; out 0xe0, eax; jmp back`: SYNC forever.
const SYNC_LOOP: [u8; 9] = [0xb8, 0x01, 0, 0, 0, 0xe7, 0xe0, 0xeb, 0xf7];
/// `xor eax, eax; out 0xf4, al`: debug exit 0 at once.
const EXIT_NOW: [u8; 4] = [0x31, 0xc0, 0xe6, 0xf4];

fn us(ns: u64) -> String {
    format!("{:.1} us", ns as f64 / 1000.0)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// One in-process setup: Vm::new phases and start() to the first SYNC.
/// Setup phases, `Vm::new` time, start-to-first-exit time.
type SetupFigures = (Vec<(&'static str, Duration)>, Duration, Duration);

fn one_setup() -> Result<SetupFigures, Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let mut vm = Vm::new(&VmConfig::payload(
        minimal_elf(HIMEM_START, &SYNC_LOOP, 0x1000),
        1,
    ))?;
    let new_time = t0.elapsed();
    let phases = vm.setup_times().to_vec();
    let start_ns = now_ns();
    let mut running = vm.start()?;
    let ev = running.next_event(Duration::from_secs(10))?;
    let first = Duration::from_nanos(ev.time_ns.saturating_sub(start_ns));
    running.stop();
    running.wait()?;
    Ok((phases, new_time, first))
}

fn raw_kvm_round_trips(n: usize) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let kvm = Kvm::new()?;
    let vm = kvm.create_vm()?;
    let mem = GuestMemory::new(2 << 20, Thp::Default)?;
    mem.register(&vm)?;
    // Real mode at 0x1000: `out 0xe0, al; jmp back`.
    mem.mmap()
        .write_slice(&[0xe6, 0xe0, 0xeb, 0xfc], GuestAddress(0x1000))?;
    let mut vcpu = vm.create_vcpu(0)?;
    let mut sregs = vcpu.get_sregs()?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs)?;
    vcpu.set_regs(&kvm_bindings::kvm_regs {
        rip: 0x1000,
        rflags: 2,
        ..Default::default()
    })?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n + 1 {
        let t = now_ns();
        match vcpu.run()? {
            VcpuExit::IoOut(0xe0, _) => v.push(now_ns() - t),
            other => return Err(format!("raw KVM peer: unexpected exit {other:?}").into()),
        }
    }
    v.remove(0);
    Ok(v)
}

fn spawn_wall(cmd: &mut Command, n: usize) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let mut v = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let st = cmd.stdin(Stdio::null()).stdout(Stdio::null()).status()?;
        v.push(t.elapsed().as_nanos() as u64);
        if !st.success() {
            return Err(format!("{cmd:?} exited with {st}").into());
        }
    }
    Ok(v)
}

pub fn exec(a: SetupArgs) -> CmdResult {
    let n = a.setups.max(1);
    println!("bench setup: {n} setups, {} round trips", a.round_trips);

    // In-process setup.
    let mut news = Vec::new();
    let mut firsts = Vec::new();
    let mut phase_sum: Vec<(&'static str, u64)> = Vec::new();
    for _ in 0..n {
        let (phases, new_time, first) = one_setup()?;
        news.push(new_time.as_nanos() as u64);
        firsts.push(first.as_nanos() as u64);
        for (name, d) in phases {
            match phase_sum.iter_mut().find(|(p, _)| *p == name) {
                Some((_, s)) => *s += d.as_nanos() as u64,
                None => phase_sum.push((name, d.as_nanos() as u64)),
            }
        }
    }
    let new_p50 = percentile(&mut news, 50.0);
    let first_p50 = percentile(&mut firsts, 50.0);
    println!("  Vm::new                       p50 {}", us(new_p50));
    for (name, s) in &phase_sum {
        println!("    {name:<27} avg {}", us(s / n as u64));
    }
    println!("  start() -> first SYNC exit    p50 {}", us(first_p50));
    let in_process = Duration::from_nanos(new_p50 + first_p50);
    println!("  in-process setup to first guest exit: {}", ms(in_process));

    // Process start to guest exit, against spawning /bin/true.
    // A private folder with a random name, removed on drop.
    let tmp = vmm_sys_util::tempdir::TempDir::new_with_prefix(
        std::env::temp_dir().join("mmuvisor-bench-"),
    )
    .map_err(std::io::Error::from)?;
    let elf = tmp.as_path().join("exit0.elf");
    std::fs::write(&elf, minimal_elf(HIMEM_START, &EXIT_NOW, 0x1000))?;
    let exe = std::env::current_exe()?;
    let mut me = Command::new(exe);
    me.arg("run").arg("--payload").arg(&elf);
    let mut mine = spawn_wall(&mut me, n)?;
    let mut peer = spawn_wall(&mut Command::new("/bin/true"), n)?;
    drop(tmp);
    let (m50, p50) = (percentile(&mut mine, 50.0), percentile(&mut peer, 50.0));
    println!(
        "  exec -> guest debug exit -> process exit  p50 {}  (peer: spawn /bin/true p50 {}, ratio {:.1}x)",
        ms(Duration::from_nanos(m50)),
        ms(Duration::from_nanos(p50)),
        m50 as f64 / p50.max(1) as f64
    );
    let target = Duration::from_millis(10);
    println!(
        "  target: setup <= 10 ms: in-process {} ({}), whole process {} ({})",
        ms(in_process),
        if in_process <= target {
            "met"
        } else {
            "not met"
        },
        ms(Duration::from_nanos(m50)),
        if Duration::from_nanos(m50) <= target {
            "met"
        } else {
            "not met"
        }
    );

    // SYNC round trip.
    let mut vm = Vm::new(&VmConfig::payload(
        minimal_elf(HIMEM_START, &SYNC_LOOP, 0x1000),
        1,
    ))?;
    let mut running = vm.start()?;
    let mut ev = running.next_event(Duration::from_secs(10))?;
    let mut reply_to_exit = Vec::with_capacity(a.round_trips);
    let mut loop_time = Vec::with_capacity(a.round_trips);
    for _ in 0..a.round_trips {
        let t = now_ns();
        running.reply(ev.vcpu, 0)?;
        ev = running.next_event(Duration::from_secs(10))?;
        let back = now_ns();
        if !matches!(ev.kind, GuestEventKind::Sync { .. }) {
            return Err(format!("unexpected event {:?}", ev.kind).into());
        }
        reply_to_exit.push(ev.time_ns.saturating_sub(t));
        loop_time.push(back - t);
    }
    running.stop();
    running.wait()?;
    let raw = raw_kvm_round_trips(a.round_trips)?;
    let (mut raw1, mut raw2) = (raw.clone(), raw);
    let raw50 = percentile(&mut raw1, 50.0);
    println!(
        "  SYNC round trip (reply -> next SYNC seen by host)  p50 {}  p99 {}",
        us(percentile(&mut loop_time.clone(), 50.0)),
        us(percentile(&mut loop_time, 99.0))
    );
    println!(
        "    of which reply -> next SYNC exit decoded       p50 {}  p99 {}",
        us(percentile(&mut reply_to_exit.clone(), 50.0)),
        us(percentile(&mut reply_to_exit, 99.0))
    );
    println!(
        "  peer: raw KVM_RUN port-exit round trip            p50 {}  p99 {}",
        us(raw50),
        us(percentile(&mut raw2, 99.0))
    );
    Ok(0)
}
