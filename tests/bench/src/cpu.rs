//! CPU time spent by this process and by a PostgreSQL cluster's processes, read from
//! `/proc`, so a run can say where its CPU went (per request: host and load generator
//! versus PostgreSQL) before anyone guesses.

use std::path::Path;
use std::time::Duration;

/// `/proc` counts CPU time in clock ticks of 1/100 s on Linux (`USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time (user + system) used so far by this process and by the cluster whose data
/// directory is `data_dir`: its postmaster, the postmaster's live children, and the
/// children it has already reaped (a backend whose client disconnected: the kernel adds
/// its time to the postmaster's `cutime`/`cstime`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    pub this_process: Duration,
    pub postgres: Duration,
}

impl CpuSample {
    /// Samples now; zero where `/proc` cannot be read.
    pub fn take(data_dir: &Path) -> CpuSample {
        let postmaster = std::fs::read_to_string(data_dir.join("postmaster.pid"))
            .ok()
            .and_then(|text| {
                text.lines()
                    .next()
                    .and_then(|line| line.trim().parse::<u32>().ok())
            });
        let postgres = postmaster.map_or(Duration::ZERO, |pid| {
            let children = std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
                .filter(|child| stat(*child).is_some_and(|fields| fields.parent == pid));
            cpu_of(pid) + reaped_children_cpu(pid) + children.map(cpu_of).sum::<Duration>()
        });
        CpuSample {
            this_process: cpu_of(std::process::id()),
            postgres,
        }
    }

    /// The CPU used between `earlier` and this sample.
    pub fn since(&self, earlier: &CpuSample) -> CpuSample {
        CpuSample {
            this_process: self.this_process.saturating_sub(earlier.this_process),
            postgres: self.postgres.saturating_sub(earlier.postgres),
        }
    }
}

struct Stat {
    parent: u32,
    ticks: u64,
    /// Ticks of the children the process has waited for.
    reaped_ticks: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; fields follow the last ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12).
    // … cutime(13) cstime(14).
    Some(Stat {
        parent: fields.get(1)?.parse().ok()?,
        ticks: fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?,
        reaped_ticks: fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?,
    })
}

fn reaped_children_cpu(pid: u32) -> Duration {
    stat(pid).map_or(Duration::ZERO, |stat| {
        Duration::from_secs_f64(stat.reaped_ticks as f64 / TICKS_PER_SECOND)
    })
}

/// CPU time (user + system) the process `pid` has used so far; zero when unreadable.
fn cpu_of(pid: u32) -> Duration {
    stat(pid).map_or(Duration::ZERO, |stat| {
        Duration::from_secs_f64(stat.ticks as f64 / TICKS_PER_SECOND)
    })
}

/// CPU time (user + system) used so far by the process `pid` and every process below
/// it (`spin up` runs its HTTP trigger in a child process).
pub fn cpu_of_tree(pid: u32) -> Duration {
    tree_of(pid).into_iter().map(cpu_of).sum()
}

/// Resident memory (`VmRSS`) of the process `pid` and every process below it, in KiB.
pub fn rss_of_tree(pid: u32) -> u64 {
    tree_of(pid)
        .into_iter()
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// `pid` and every process below it.
fn tree_of(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|child| Some((child, stat(child)?.parent)))
        .collect();
    let mut tree = vec![pid];
    let mut index = 0;
    while index < tree.len() {
        let parent = tree[index];
        tree.extend(
            parents
                .iter()
                .filter(|(_, of)| *of == parent)
                .map(|(child, _)| *child),
        );
        index += 1;
    }
    tree
}
