//! `mmuvisor bench convert`: conversion rate of /dev/mmuvisor against test_hmm.
use crate::commands::CmdResult;

#[derive(clap::Args)]
pub struct ConvertArgs {
    /// Batch sizes in pages (pages converted per call).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 64, 4096])]
    pub pages: Vec<usize>,
    /// Pages each converter converts per round and batch size.
    #[arg(long, default_value_t = 8192)]
    pub pages_per_round: usize,
    /// Alternating rounds per batch size.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
}

pub fn convert(a: ConvertArgs) -> CmdResult {
    use super::convert_rate::measure;
    if a.pages
        .iter()
        .any(|&n| n == 0 || n as u64 > crate::notifier_client::uapi::MAX_NPAGES)
    {
        return Err("bench convert: --pages values must be 1..=1048576".into());
    }
    // Fail with one clear line before printing anything when not in the lab.
    crate::notifier_client::NotifierClient::open()?;
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
    println!("# note: test_hmm's call also copies the converted pages into a bounce buffer");
    Ok(0)
}
