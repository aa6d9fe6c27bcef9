//! The machine under the run: how busy its CPUs were, how much CPU time the hypervisor
//! took away (steal), and how long tasks waited for a CPU (pressure), sampled every
//! second from `/proc/stat` and `/proc/pressure/cpu`.
//!
//! On a virtual machine the hypervisor can stop a virtual CPU for milliseconds at a time
//! to run someone else's work. Every request in flight then waits, whatever the server
//! does, and a latency percentile measured across such moments says more about the host
//! than about the server. The report shows these figures beside the latencies so that a
//! run taken on a disturbed machine can be told apart from one that was not.

use std::time::Instant;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::sampling::{self, Samples};

/// A second in which the hypervisor took at least this share of the CPU time counts as
/// disturbed.
pub const DISTURBED_STEAL_SHARE: f64 = 0.10;

/// The machine's CPU time since boot, in clock ticks, from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTicks {
    /// Running tasks: user, nice, system, irq and softirq.
    pub busy: u64,
    /// Taken by the hypervisor for other guests.
    pub steal: u64,
    /// Everything, idle and waiting for I/O included.
    pub total: u64,
}

/// Parses the aggregate `cpu` line of `/proc/stat`: `cpu user nice system idle iowait irq
/// softirq steal guest guest_nice` (guest time is already counted in user time).
pub fn parse_cpu_ticks(stat: &str) -> Option<CpuTicks> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] =
        fields.as_slice().try_into().ok()?;
    Some(CpuTicks {
        busy: user + nice + system + irq + softirq,
        steal,
        total: user + nice + system + idle + iowait + irq + softirq + steal,
    })
}

/// Parses the `total=` of the `some` line of `/proc/pressure/cpu`: microseconds in which
/// at least one task waited for a CPU.
pub fn parse_cpu_pressure_us(pressure: &str) -> Option<u64> {
    let line = pressure.lines().find(|line| line.starts_with("some "))?;
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("total="))?
        .parse()
        .ok()
}

/// One sample of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineSample {
    /// CPU time.
    pub cpu: CpuTicks,
    /// Pressure stall time, when the kernel reports it.
    pub pressure_us: Option<u64>,
}

fn read_machine() -> Option<MachineSample> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    Some(MachineSample {
        cpu: parse_cpu_ticks(&stat)?,
        pressure_us: std::fs::read_to_string("/proc/pressure/cpu")
            .ok()
            .as_deref()
            .and_then(parse_cpu_pressure_us),
    })
}

/// The machine over a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MachineUsage {
    /// Seconds between the first and the last sample.
    pub seconds: f64,
    /// Share of all CPU time spent running tasks (any process, the server's, the load
    /// generator's, a database's).
    pub busy_share: f64,
    /// Share of all CPU time the hypervisor took.
    pub steal_share: f64,
    /// The largest share the hypervisor took in one sampling interval.
    pub steal_max_share: f64,
    /// Sampling intervals (about a second each) in which it took at least
    /// [`DISTURBED_STEAL_SHARE`].
    pub disturbed_intervals: usize,
    /// Sampling intervals in all.
    pub intervals: usize,
    /// Share of the wall time in which at least one task waited for a CPU (PSI `some`).
    pub cpu_pressure_share: Option<f64>,
}

impl MachineUsage {
    /// Whether the hypervisor took a tenth of the CPU or more in any interval.
    pub fn disturbed(&self) -> bool {
        self.disturbed_intervals > 0
    }
}

/// Summarises samples taken at `(seconds since start, sample)`.
pub fn machine_usage(samples: &[(f64, MachineSample)]) -> MachineUsage {
    let (Some((first_t, first)), Some((last_t, last))) = (samples.first(), samples.last()) else {
        return MachineUsage::default();
    };
    let share = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    let total = last.cpu.total.saturating_sub(first.cpu.total);
    let mut steal_max_share: f64 = 0.0;
    let mut disturbed_intervals = 0;
    for pair in samples.windows(2) {
        let (a, b) = (pair[0].1.cpu, pair[1].1.cpu);
        let stolen = share(
            b.steal.saturating_sub(a.steal),
            b.total.saturating_sub(a.total),
        );
        steal_max_share = steal_max_share.max(stolen);
        if stolen >= DISTURBED_STEAL_SHARE {
            disturbed_intervals += 1;
        }
    }
    let seconds = last_t - first_t;
    MachineUsage {
        seconds,
        busy_share: share(last.cpu.busy.saturating_sub(first.cpu.busy), total),
        steal_share: share(last.cpu.steal.saturating_sub(first.cpu.steal), total),
        steal_max_share,
        disturbed_intervals,
        intervals: samples.len() - 1,
        cpu_pressure_share: match (first.pressure_us, last.pressure_us) {
            (Some(a), Some(b)) if seconds > 0.0 => {
                Some((b.saturating_sub(a) as f64 / 1e6 / seconds).min(1.0))
            }
            _ => None,
        },
    }
}

/// Samples the machine every second until cancelled.
#[derive(Debug, Clone)]
pub struct MachineSampler {
    samples: Samples<MachineSample>,
}

impl MachineSampler {
    /// Starts sampling; the clock of the samples starts at `started`.
    pub fn start(started: Instant, stop: CancellationToken) -> MachineSampler {
        MachineSampler {
            samples: sampling::every_second(read_machine, started, stop),
        }
    }

    /// Takes one more sample now and summarises.
    pub fn finish(&self, started: Instant) -> MachineUsage {
        sampling::finish(&self.samples, read_machine, started, machine_usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_line_splits_into_busy_steal_and_total() {
        let stat = "cpu  100 5 50 800 20 3 2 20 7 0\ncpu0 50 2 25 400 10 1 1 10 0 0\nintr 1 2\n";
        assert_eq!(
            parse_cpu_ticks(stat),
            Some(CpuTicks {
                busy: 160,
                steal: 20,
                total: 1000
            })
        );
        assert_eq!(parse_cpu_ticks("intr 1 2\n"), None);
        assert_eq!(parse_cpu_ticks("cpu  1 2 x 4 5 6 7 8\n"), None);
        assert_eq!(parse_cpu_ticks("cpu  1 2 3\n"), None, "too few fields");
    }

    #[test]
    fn pressure_is_read_from_the_some_line() {
        let pressure = "some avg10=1.50 avg60=2.00 avg300=0.50 total=123456\n\
                        full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_cpu_pressure_us(pressure), Some(123_456));
        assert_eq!(parse_cpu_pressure_us("full total=5\n"), None);
    }

    fn sample(busy: u64, steal: u64, total: u64, pressure_us: u64) -> MachineSample {
        MachineSample {
            cpu: CpuTicks { busy, steal, total },
            pressure_us: Some(pressure_us),
        }
    }

    #[test]
    fn a_second_of_heavy_steal_marks_the_run_disturbed() {
        // Three one-second intervals of 200 ticks (2 CPUs): steal 2 %, 25 %, 0 %.
        let samples = [
            (0.0, sample(0, 0, 0, 0)),
            (1.0, sample(100, 4, 200, 100_000)),
            (2.0, sample(180, 54, 400, 400_000)),
            (3.0, sample(300, 54, 600, 450_000)),
        ];
        let usage = machine_usage(&samples);
        assert_eq!(usage.intervals, 3);
        assert_eq!(usage.disturbed_intervals, 1);
        assert!(usage.disturbed());
        assert!((usage.steal_max_share - 0.25).abs() < 1e-9);
        assert!((usage.steal_share - 54.0 / 600.0).abs() < 1e-9);
        assert!((usage.busy_share - 0.5).abs() < 1e-9);
        assert!((usage.cpu_pressure_share.unwrap() - 0.15).abs() < 1e-9);
    }

    #[test]
    fn a_quiet_run_is_not_disturbed() {
        let samples = [
            (0.0, sample(0, 0, 0, 0)),
            (1.0, sample(50, 2, 200, 0)),
            (2.0, sample(100, 4, 400, 0)),
        ];
        let usage = machine_usage(&samples);
        assert!(!usage.disturbed());
        assert!((usage.steal_max_share - 0.01).abs() < 1e-9);
        assert_eq!(machine_usage(&[]), MachineUsage::default());
    }
}
