//! What Linux's /proc tells of another process (the server under test): its CPU time, all
//! threads together, and its resident memory.

use std::fs;

/// The CPU time (user + system, every thread, dead ones included) of process `pid`, in
/// seconds; None when /proc does not have it.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / ticks_per_sec())
}

/// The resident memory of process `pid` (VmRSS), in KiB; None when /proc does not have it.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss_kib(&status)
}

/// utime + stime from the text of /proc/PID/stat (fields 14 and 15). The command name (field
/// 2) is in parentheses and may hold spaces or parentheses, so the count starts after the
/// last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // `rest` starts at field 3 (state): utime is the 12th field from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_ascii_whitespace().nth(1)?.parse().ok()
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_fields_14_and_15_even_with_odd_names() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 500 0 0 0 \
                    250 70 0 0 20 0 3 0 100 1000000 300 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(320));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn rss_is_read_from_vmrss() {
        let status = "Name:\tserver\nVmPeak:\t  9000 kB\nVmRSS:\t    5968 kB\nThreads:\t5\n";
        assert_eq!(parse_rss_kib(status), Some(5968));
        assert_eq!(parse_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let me = std::process::id();
        assert!(cpu_secs(me).is_some_and(|s| s >= 0.0));
        assert!(rss_kib(me).is_some_and(|k| k > 0));
    }
}
