//! `mmuvisor drill [NAME...|all]`: run drills, print KTAP / human / JSON.

use std::io::IsTerminal;
use std::path::PathBuf;

use super::CmdResult;
use crate::drill::report::ktap::{self, Report};
use crate::drill::report::{baseline, json};
use crate::drill::session::DrillConfig;
use crate::drill::{runner, DRILLS};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Ktap,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// Drills to run (`all` or none: every drill).
    pub names: Vec<String>,
    /// List the drills and what they need.
    #[arg(long)]
    pub list: bool,
    /// Output format (default: human on a terminal, ktap otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write one SVG timeline per drill into this directory.
    #[arg(long, value_name = "DIR")]
    pub timeline: Option<PathBuf>,
    /// vCPUs of each drill's guest.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=32))]
    pub vcpus: u64,
    /// Data pages a drill uses around the page under test.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(3..=4096))]
    pub pages: u64,
    /// Repetitions inside a drill (increments, conversions).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub iterations: u64,
    /// Compare with a saved run (its `--format json` output, or KTAP): list
    /// regressions and fixes; the exit status is 1 on a regression, else 0.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Seed for the values drills write.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Give up on a drill after this many seconds: it is reported `not ok`
    /// (# TIMEOUT) and the next drill runs.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// drill fuzz (alone or in `all`): run random sequences for this many
    /// seconds.
    #[arg(long = "time", value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub fuzz_time: u64,
    /// drill fuzz: run the sequence of this replay file (written on a failure).
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
}

impl Args {
    pub fn config(&self) -> DrillConfig {
        DrillConfig {
            vcpus: self.vcpus as usize,
            pages: self.pages,
            iterations: self.iterations,
            seed: self.seed,
            fuzz_secs: self.fuzz_time,
            replay: self.replay.clone(),
            ..DrillConfig::default()
        }
    }
}

/// Whether the person (or program) reading stdout is a terminal. In the
/// lab stdout is the lab's console, a tty whatever the host has: `lab run`
/// passes the host's answer in MMUVISOR_STDOUT_TTY.
fn stdout_is_terminal() -> bool {
    match std::env::var(crate::lab::session::STDOUT_TTY_ENV).as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => std::io::stdout().is_terminal(),
    }
}

fn human(r: &Report) -> String {
    use crate::drill::verdict::Outcome;
    let mut s = match &r.outcome {
        Outcome::Judged(v) if v.passed() => format!("PASS  {} ({:.2} s)\n", r.name, r.seconds),
        Outcome::Judged(_) => format!("FAIL  {} ({:.2} s)\n", r.name, r.seconds),
        Outcome::Skip(why) => format!("SKIP  {}: {why}\n", r.name),
        Outcome::Error(e) => format!("ERROR {}: {e}\n", r.name),
        Outcome::Timeout(secs) => {
            format!("FAIL  {}: no verdict within {secs} s (--timeout)\n", r.name)
        }
    };
    if let Outcome::Judged(v) = &r.outcome {
        for c in v.failures() {
            s.push_str(&format!("      {}: {}\n", c.name, c.detail));
        }
        for n in &v.notes {
            s.push_str(&format!("      note: {n}\n"));
        }
    }
    s
}

/// Writes and flushes (a closed stdout is not an error worth a panic).
fn emit(out: &mut std::io::Stdout, text: &str) {
    use std::io::Write;
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

pub fn exec(args: Args) -> CmdResult {
    if args.list {
        // `--list NAME...` lists those drills (hidden ones included).
        let listed: Vec<&crate::drill::Drill> = if args.names.is_empty() {
            DRILLS.iter().filter(|d| !d.hidden).collect()
        } else {
            runner::select(&args.names)?
        };
        for d in listed {
            let needs = if d.needs.module {
                "kvm, tracefs, /dev/mmuvisor"
            } else if d.needs.kvm {
                "kvm, tracefs"
            } else {
                "-"
            };
            println!("{:<26} {:<30} {}", d.name, needs, d.about);
        }
        return Ok(0);
    }
    let drills = runner::select(&args.names)?;
    let base = args.baseline.as_deref().map(baseline::load).transpose()?;
    if let Some(dir) = &args.timeline {
        std::fs::create_dir_all(dir).map_err(|e| format!("--timeline {}: {e}", dir.display()))?;
    }
    let format = args.format.unwrap_or(if stdout_is_terminal() {
        Format::Human
    } else {
        Format::Ktap
    });
    let cfg = args.config();
    let timeout = args.timeout.map(std::time::Duration::from_secs);
    // KTAP and human output stream: each result is printed (and flushed) as
    // its drill ends, so CI logs follow the run and a hang shows where.
    let mut out = std::io::stdout();
    if format == Format::Ktap {
        emit(&mut out, &ktap::header(drills.len()));
        emit(&mut out, &ktap::kernel_line());
    }
    let child = std::env::var_os(runner::CHILD_ENV).is_some();
    // Known kernel bugs of this kernel (resources/known-issues.txt): their
    // failures are XFAIL. Not in a drill's own process: its parent decides.
    let issues = crate::lab::known_issues::list();
    let version = crate::lab::known_issues::major_minor(&crate::drill::report::kernel_words().0);
    let known_of = |name: &str| match (child, version) {
        (false, Some(v)) => crate::lab::known_issues::find(&issues, v, name),
        _ => None,
    };
    let mut known = Vec::new();
    let mut reports = Vec::new();
    for (i, d) in drills.into_iter().enumerate() {
        log::info!("drill {}", d.name);
        runner::note_running(d.name);
        // A drill's own process (the runner's child) runs it here; the
        // runner gives each drill a process and adds the kernel's verdict.
        let r = if child {
            runner::run_with_timeout(d, &cfg, args.timeline.as_deref(), timeout)
        } else {
            runner::run_checked(d, &cfg, args.timeline.as_deref(), timeout)
        };
        let k = known_of(&r.name);
        match format {
            Format::Human => emit(&mut out, &human(&r)),
            Format::Ktap => emit(&mut out, &ktap::result_known(i + 1, &r, k)),
            Format::Json => {}
        }
        known.push(k);
        reports.push(r);
    }
    runner::note_running("");
    if child {
        runner::write_frames_for_parent().map_err(|e| format!("{}: {e}", runner::CHILD_ENV))?;
    }
    match format {
        Format::Ktap => emit(&mut out, &ktap::footer_known(&reports, &known)),
        Format::Json => emit(&mut out, &json::render(&reports)),
        Format::Human => {
            let (p, f, k) = ktap::totals(&reports);
            emit(&mut out, &format!("{p} passed, {f} failed, {k} skipped\n"));
        }
    }
    let Some(base) = base else {
        return Ok(ktap::exit_code_known(&reports, &known));
    };
    let cmp = baseline::compare(&base, &baseline::from_reports(&reports));
    let file = args.baseline.unwrap_or_default().display().to_string();
    match format {
        Format::Ktap => print!("{}", cmp.render(&file, "# ")),
        Format::Human => print!("{}", cmp.render(&file, "")),
        Format::Json => eprint!("{}", cmp.render(&file, "")),
    }
    Ok(cmp.exit_code())
}
