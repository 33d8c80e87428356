//! Figures about mcw's own process, read from `/proc/self` at scrape time, under the names
//! every Prometheus client library uses (`process_cpu_seconds_total`, …).

use nix::sys::resource::{Resource, getrlimit};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The collector: it reads `/proc/self` on every scrape; the boot time (for the start time)
/// once.
#[derive(Debug)]
pub struct Process {
    boot_time: Option<f64>,
}

impl Process {
    pub fn new() -> Process {
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|text| boot_time(&text));
        Process { boot_time }
    }
}

impl Default for Process {
    fn default() -> Process {
        Process::new()
    }
}

/// What `/proc/self/stat`, `/proc/self/fd` and the open-files limit say.
#[derive(Debug, Default, PartialEq)]
pub struct Figures {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub start_time_seconds: f64,
    pub open_fds: f64,
    pub max_fds: f64,
}

impl Figures {
    /// The figures of this process now (`None` if `/proc/self/stat` cannot be read), for a
    /// machine booted at `boot` (Unix time).
    pub fn read(boot: f64) -> Option<Figures> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let mut f = from_stat(
            &stat,
            boot,
            rustix::param::clock_ticks_per_second() as f64,
            rustix::param::page_size() as f64,
        )?;
        f.open_fds = std::fs::read_dir("/proc/self/fd").map_or(f64::NAN, |d| d.count() as f64);
        f.max_fds = getrlimit(Resource::RLIMIT_NOFILE).map_or(f64::NAN, |(soft, _)| soft as f64);
        Some(f)
    }
}

/// The boot time (Unix time) in `/proc/stat`.
fn boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// CPU time, memory and start time from `/proc/self/stat` (fields after the command name,
/// which may hold spaces and parentheses).
fn from_stat(stat: &str, boot: f64, ticks: f64, page: f64) -> Option<Figures> {
    let after_comm = &stat[stat.rfind(')')? + 2..];
    // Field 3 (state) is the first here; utime is field 14, rss field 24.
    let fields: Vec<&str> = after_comm.split(' ').collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    Some(Figures {
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        start_time_seconds: boot + field(22)? / ticks,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page,
        open_fds: 0.0,
        max_fds: 0.0,
    })
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(f) = self.boot_time.and_then(Figures::read) else {
            return Ok(());
        };
        let cpu = ConstCounter::new(f.cpu_seconds);
        let help = "User and system CPU time mcw has used";
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            help,
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory of mcw",
                f.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory of mcw",
                f.virtual_bytes,
            ),
            (
                "process_start_time_seconds",
                "When mcw started, in seconds since the Unix epoch",
                f.start_time_seconds,
            ),
            (
                "process_open_fds",
                "File descriptors mcw has open",
                f.open_fds,
            ),
            (
                "process_max_fds",
                "The most file descriptors mcw may open",
                f.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_after_the_command_name() {
        // A command name with a space and a parenthesis must not shift the fields.
        let stat = "42 (mc w) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1000 8192000 300 18446744073709551615";
        let boot = boot_time("cpu 1 2 3\nbtime 1700000000\n").unwrap();
        let f = from_stat(stat, boot, 100.0, 4096.0).unwrap();
        assert_eq!(f.cpu_seconds, 3.0);
        assert_eq!(f.start_time_seconds, 1_700_000_010.0);
        assert_eq!(f.virtual_bytes, 8_192_000.0);
        assert_eq!(f.resident_bytes, 300.0 * 4096.0);
    }
}
