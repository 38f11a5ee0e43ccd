//! CPU placement of the client and the servers.
//!
//! On this kind of machine (small VM) a wake-up across vCPUs costs far more
//! than one on the same vCPU, so unpinned runs are bimodal (the scheduler
//! decides per connection whether client and server share a core). Pinning
//! makes runs repeatable. It works without any hook in the server modules:
//! Linux threads inherit the affinity of the thread that creates them, so the
//! main thread takes the server CPU set while servers start (their runtimes,
//! acceptors and later connection threads inherit it) and then moves itself
//! to the client CPU before driving load.

use std::io;
use std::str::FromStr;

use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// Client on CPU 0, servers on the other CPUs (all round trips cross cores).
    Split,
    /// Everything on CPU 0 (all round trips are same-core switches).
    Same,
    /// Leave placement to the scheduler.
    None,
}

impl FromStr for Pin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "split" => Ok(Pin::Split),
            "same" => Ok(Pin::Same),
            "none" => Ok(Pin::None),
            _ => Err(format!("--pin: expected split, same or none, got {s:?}")),
        }
    }
}

/// CPU ids the process may run on (from the affinity mask at start).
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = sched_getaffinity(None)?;
    Ok((0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect())
}

fn set_current(cpus: &[usize]) -> io::Result<()> {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c);
    }
    sched_setaffinity(None, &set).map_err(io::Error::from)
}

impl Pin {
    pub fn describe(self, cpus: &[usize]) -> String {
        match (self, cpus) {
            (Pin::Split, [c, rest @ ..]) if !rest.is_empty() => {
                format!("split: client on CPU {c}, servers on CPU {rest:?}")
            }
            (Pin::Split | Pin::Same, [c, ..]) => {
                format!("same: client and servers all on CPU {c}")
            }
            _ => "none: scheduler decides (expect bimodal results on small VMs)".into(),
        }
    }

    /// Call on the main thread before starting servers.
    pub fn enter_server_placement(self, cpus: &[usize]) -> io::Result<()> {
        match (self, cpus) {
            (Pin::Split, [_, rest @ ..]) if !rest.is_empty() => set_current(rest),
            (Pin::Split | Pin::Same, [c, ..]) => set_current(&[*c]),
            _ => Ok(()),
        }
    }

    /// Call on the main thread after servers started, before driving load.
    pub fn enter_client_placement(self, cpus: &[usize]) -> io::Result<()> {
        match (self, cpus) {
            (Pin::Split | Pin::Same, [c, ..]) => set_current(&[*c]),
            _ => Ok(()),
        }
    }
}
