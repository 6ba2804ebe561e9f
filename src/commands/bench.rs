//! `mmuvisor bench NAME`: benchmarks print figures (ratios against a peer
//! measured in the same run); they assert nothing. Each issue adds its own.
use super::CmdResult;

#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// Device-exclusive conversion rate of /dev/mmuvisor against test_hmm's
    /// HMM_DMIRROR_EXCLUSIVE (needs mmuvisor.ko and test_hmm.ko: run in the lab).
    Convert(ConvertArgs),
    /// Revocation round trip (guest touch -> PTE present again) vs a plain
    /// process touching an exclusive page; p50/p99 (needs the module: lab).
    Revoke {
        /// Conversions to time.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
    },
    /// Every drill (or the named ones) N times: verdict stability.
    Repeat {
        names: Vec<String>,
        #[arg(long, default_value_t = 50)]
        times: usize,
    },
    /// VM setup time and SYNC round trip, against peers measured in the same run.
    Setup(super::bench_setup::SetupArgs),
}

#[derive(clap::Args)]
pub struct ConvertArgs {
    /// Batch sizes in pages (pages converted per call).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 64, 4096])]
    pages: Vec<usize>,
    /// Pages each converter converts per round and batch size.
    #[arg(long, default_value_t = 8192)]
    pages_per_round: usize,
    /// Alternating rounds per batch size.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
}

pub fn exec(cmd: BenchCmd) -> CmdResult {
    match cmd {
        BenchCmd::Convert(a) => convert(a),
        BenchCmd::Setup(a) => super::bench_setup::exec(a),
        BenchCmd::Revoke { rounds } => {
            crate::drill::bench::revoke(rounds.max(1), &Default::default())?;
            Ok(0)
        }
        BenchCmd::Repeat { names, times } => Ok(crate::drill::bench::repeat(
            &names,
            times.max(1),
            &Default::default(),
        )?),
    }
}

fn convert(a: ConvertArgs) -> CmdResult {
    use crate::notifier_client::bench::measure;
    if a.pages
        .iter()
        .any(|&n| n == 0 || n as u64 > crate::notifier_client::uapi::MAX_NPAGES)
    {
        return Err("bench convert: --pages values must be 1..=1048576".into());
    }
    println!("# bench convert: pages/s, mmuvisor MAKE_EXCLUSIVE vs test_hmm HMM_DMIRROR_EXCLUSIVE");
    println!(
        "{:>7} {:>6} {:>14} {:>14} {:>7}",
        "npages", "calls", "mmuvisor", "test_hmm", "ratio"
    );
    let mut worst = f64::INFINITY;
    for &n in &a.pages {
        let r = measure(n, a.pages_per_round, a.rounds)?;
        worst = worst.min(r.ratio());
        println!(
            "{:>7} {:>6} {:>14.0} {:>14.0} {:>7.3}",
            r.npages,
            r.reps * a.rounds.max(1),
            r.mmuvisor,
            r.test_hmm,
            r.ratio()
        );
    }
    println!("# lowest ratio {worst:.3} (target >= 0.9)");
    Ok(0)
}
