//! mcrouter's own stats (fetched at scrape time by [`crate::mcrouter::stats`]), exported under
//! the names and labels of the standalone Dev25/mcrouter_exporter 0.5.0, so dashboards and
//! alerts built on it keep working.
//!
//! Those names predate Prometheus' naming lint (`mcrouter_command_count`, …) and are kept
//! as they are. Families the exporter sends as counters without a `_total` name are gauges
//! here: OpenMetrics would append `_total` to a counter and rename the series. Values are as
//! mcrouter reports them; a stat mcrouter leaves out is 0 (as in the exporter, so series do
//! not come and go), one that is not a number is NaN.

use std::collections::HashMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::mcrouter::stats::Stats;

/// Operations of the `mcrouter_commands{cmd}` families (the exporter's list).
const COMMANDS: [&str; 17] = [
    "add",
    "append",
    "cas",
    "decr",
    "flushall",
    "flushre",
    "get",
    "gets",
    "incr",
    "metaget",
    "prepend",
    "replace",
    "touch",
    "set",
    "delete",
    "lease_get",
    "lease_set",
];
const REQUESTS: [&str; 4] = ["error", "replied", "sent", "success"];
const RESULTS: [&str; 7] = [
    "busy",
    "connect_error",
    "connect_timeout",
    "data_timeout",
    "error",
    "local_error",
    "tko",
];
const SERVER_STATES: [&str; 4] = ["closed", "down", "new", "up"];
/// The stat behind `mcrouter_clients`: mcrouter says `num_client_connections` (in `stats all`),
/// where the exporter looked for `num_clients`.
const CLIENTS: &str = "num_client_connections";

/// The `mcrouter_*` families of one scrape, as OpenMetrics text (no `# EOF`): the stats, or
/// `mcrouter_up 0` alone when there are none.
pub fn encode(stats: Option<Stats>) -> String {
    let mut registry = Registry::with_prefix("mcrouter");
    registry.register_collector(Box::new(Exported(stats)));
    let mut text = String::new();
    let _ = prometheus_client::encoding::text::encode_registry(&mut text, &registry);
    text
}

#[derive(Debug)]
struct Exported(Option<Stats>);

/// Families in the making: name, help, label name, and the samples.
struct Out<'a, 'e> {
    encoder: &'a mut DescriptorEncoder<'e>,
}

impl Out<'_, '_> {
    fn gauge(&mut self, name: &str, help: &str, value: f64) -> Result<(), std::fmt::Error> {
        let g = ConstGauge::new(value);
        g.encode(
            self.encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?,
        )
    }

    fn labelled(
        &mut self,
        name: &str,
        help: &str,
        label: &'static str,
        samples: &[(String, f64)],
    ) -> Result<(), std::fmt::Error> {
        let mut family = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (value, sample) in samples {
            let labels = [(label, value.as_str())];
            ConstGauge::new(*sample).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// A stat as a number: 0 when absent, NaN when not a number.
fn number(map: &HashMap<String, String>, key: &str) -> f64 {
    map.get(key)
        .map_or(0.0, |v| v.trim().parse().unwrap_or(f64::NAN))
}

impl Collector for Exported {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut out = Out {
            encoder: &mut encoder,
        };
        let up = "Whether mcrouter answered stats all and stats servers on its admin port";
        let Some(stats) = &self.0 else {
            return out.gauge("up", up, 0.0);
        };
        out.gauge("up", up, 1.0)?;
        let s = &stats.all;
        let n = |key: &str| number(s, key);
        // mcrouter reports `time` and `uptime`, not the `start_time` the exporter reads (which
        // the tests' stand-in once printed).
        let started = match (s.contains_key("time"), s.contains_key("uptime")) {
            (true, true) => n("time") - n("uptime"),
            _ => n("start_time"),
        };
        out.gauge(
            "start_time_seconds",
            "When mcrouter started, in seconds since the Unix epoch",
            started,
        )?;
        let text = |key: &str| s.get(key).cloned().unwrap_or_default();
        out.labelled(
            "version",
            "mcrouter's version (always 1)",
            "version",
            &[(text("version"), 1.0)],
        )?;
        out.labelled(
            "commandargs",
            "mcrouter's command line (always 1)",
            "commandargs",
            &[(text("commandargs"), 1.0)],
        )?;

        let per = |keys: &[&str], stat: &dyn Fn(&str) -> String| -> Vec<(String, f64)> {
            keys.iter().map(|k| (k.to_string(), n(&stat(k)))).collect()
        };
        let commands: [(&str, &str, &str); 7] = [
            ("commands", "", "Requests received per second, by operation"),
            ("command_count", "_count", "Requests received, by operation"),
            (
                "command_out",
                "_out",
                "Normal (not shadow, not failover) requests sent per second, by operation",
            ),
            (
                "command_out_failover",
                "_out_failover",
                "Failover requests sent per second, by operation",
            ),
            (
                "command_out_shadow",
                "_out_shadow",
                "Shadow requests sent per second, by operation",
            ),
            (
                "command_out_all",
                "_out_all",
                "All requests sent per second (normal, failover and shadow), by operation",
            ),
            (
                "command_out_count",
                "_out_count",
                "Normal requests sent, by operation",
            ),
        ];
        for (name, suffix, help) in commands {
            let samples = per(&COMMANDS, &|op| format!("cmd_{op}{suffix}"));
            out.labelled(name, help, "cmd", &samples)?;
        }

        let singles: [(&str, &str, &str); 10] = [
            (
                "dev_null_requests",
                "dev_null_requests",
                "Requests sent to a DevNullRoute",
            ),
            (
                "duration_us",
                "duration_us",
                "Average time to process a request, in microseconds",
            ),
            (
                "fibers_allocated",
                "fibers_allocated",
                "Fibers mcrouter has created",
            ),
            (
                "proxy_reqs_processing",
                "proxy_reqs_processing",
                "Requests being routed and not yet answered",
            ),
            (
                "proxy_reqs_waiting",
                "proxy_reqs_waiting",
                "Requests queued and not yet routed",
            ),
            (
                "config_failures",
                "config_failures",
                "Config loads that failed",
            ),
            (
                "config_last_attempt",
                "config_last_attempt",
                "When mcrouter last tried to load a config, in seconds since the Unix epoch",
            ),
            (
                "config_last_success",
                "config_last_success",
                "When mcrouter last loaded a config, in seconds since the Unix epoch",
            ),
            ("clients", CLIENTS, "Connected clients"),
            (
                "asynclog_requests",
                "asynclog_requests",
                "Failed deletes written to the spool file",
            ),
        ];
        for (name, key, help) in singles {
            out.gauge(name, help, n(key))?;
        }

        let request = per(&REQUESTS, &|t| format!("request_{t}"));
        out.labelled("request", "Requests per second, by type", "type", &request)?;
        let request = per(&REQUESTS, &|t| format!("request_{t}_count"));
        out.labelled("request_count", "Requests, by type", "type", &request)?;

        let results: [(&str, &str, &str); 6] = [
            (
                "results",
                "",
                "Replies per second to normal requests, by result",
            ),
            (
                "result_count",
                "_count",
                "Replies to normal requests, by result",
            ),
            (
                "result_failover",
                "_failover",
                "Replies per second to failover requests, by result",
            ),
            (
                "result_shadow",
                "_shadow",
                "Replies per second to shadow requests, by result",
            ),
            (
                "result_all",
                "_all",
                "Replies per second to all requests, by result",
            ),
            (
                "result_all_count",
                "_all_count",
                "Replies to all requests, by result",
            ),
        ];
        for (name, suffix, help) in results {
            let samples = per(&RESULTS, &|r| format!("result_{r}{suffix}"));
            out.labelled(name, help, "reply", &samples)?;
        }

        let servers = per(&SERVER_STATES, &|state| format!("num_servers_{state}"));
        out.labelled(
            "servers",
            "Destinations (memcached servers) by connection state",
            "state",
            &servers,
        )?;

        let cpu = ConstCounter::new(n("ps_user_time_sec") + n("ps_system_time_sec"));
        cpu.encode(out.encoder.encode_descriptor(
            "cpu_seconds",
            "User and system CPU time mcrouter has used",
            None,
            cpu.metric_type(),
        )?)?;
        out.gauge(
            "resident_memory_bytes",
            "Resident memory of mcrouter",
            n("ps_rss"),
        )?;
        out.gauge(
            "virtual_memory_bytes",
            "Virtual memory of mcrouter",
            n("ps_vsize"),
        )?;

        // Per destination. mcrouter spells two replies `notfound` and `notstored`.
        let per_server: [(&str, &str, &str); 15] = [
            (
                "server_duration_us",
                "avg_latency_us",
                "Average latency of requests to this destination, in microseconds",
            ),
            (
                "server_proxy_reqs_processing",
                "pending_reqs",
                "Requests to this destination waiting to be sent",
            ),
            (
                "server_proxy_reqs_waiting",
                "inflight_reqs",
                "Requests to this destination sent and not yet answered",
            ),
            (
                "server_proxy_reqs_retrans_ratio",
                "avg_retrans_ratio",
                "Average TCP retransmission ratio to this destination",
            ),
            (
                "server_memcached_stored_count",
                "stored",
                "STORED replies from this destination",
            ),
            (
                "server_memcached_not_stored_count",
                "notstored",
                "NOT_STORED replies from this destination",
            ),
            (
                "server_memcached_found_count",
                "found",
                "Hits (found) from this destination",
            ),
            (
                "server_memcached_not_found_count",
                "notfound",
                "Misses (not found) from this destination",
            ),
            (
                "server_memcached_deleted_count",
                "deleted",
                "DELETED replies from this destination",
            ),
            (
                "server_memcached_touched_count",
                "touched",
                "TOUCHED replies from this destination",
            ),
            (
                "server_memcached_exists_count",
                "exists",
                "EXISTS replies from this destination",
            ),
            (
                "server_memcached_remote_error_count",
                "remote_error",
                "Errors this destination returned",
            ),
            (
                "server_memcached_connect_timeout_count",
                "connect_timeout",
                "Connection timeouts to this destination",
            ),
            (
                "server_memcached_timeout_count",
                "timeout",
                "Request timeouts at this destination",
            ),
            (
                "server_memcached_tko",
                "tko",
                "Replies refused because this destination was marked TKO",
            ),
        ];
        for (name, key, help) in per_server {
            let samples: Vec<(String, f64)> = stats
                .servers
                .iter()
                .map(|(server, figures)| (server.clone(), number(figures, key)))
                .collect();
            out.labelled(name, help, "server", &samples)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcrouter::stats::{parse_all, parse_servers};

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn the_exporters_names_and_labels() {
        let stats = Stats {
            all: parse_all(&lines(
                "STAT version 41.0.0\nSTAT cmd_get_count 7\nSTAT num_servers_up 2\nSTAT ps_user_time_sec 1.5\nSTAT ps_system_time_sec 0.5\nSTAT duration_us nonsense",
            ))
            .unwrap(),
            servers: parse_servers(&lines("STAT 10.0.0.1:11211 avg_latency_us:12; found:3 notfound:4"))
                .unwrap(),
        };
        let text = encode(Some(stats));
        for needle in [
            "mcrouter_up 1.0\n",
            "mcrouter_version{version=\"41.0.0\"} 1.0\n",
            "mcrouter_command_count{cmd=\"get\"} 7.0\n",
            "mcrouter_command_count{cmd=\"set\"} 0.0\n",
            "mcrouter_servers{state=\"up\"} 2.0\n",
            "mcrouter_cpu_seconds_total 2.0\n",
            "mcrouter_duration_us NaN\n",
            "mcrouter_server_memcached_found_count{server=\"10.0.0.1:11211\"} 3.0\n",
            "mcrouter_server_memcached_not_found_count{server=\"10.0.0.1:11211\"} 4.0\n",
            "mcrouter_server_duration_us{server=\"10.0.0.1:11211\"} 12.0\n",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        assert_eq!(
            encode(None),
            "# HELP mcrouter_up Whether mcrouter answered stats all and stats servers on its admin port\n# TYPE mcrouter_up gauge\nmcrouter_up 0.0\n"
        );
    }
}
