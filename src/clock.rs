//! Time as the hub sees it: injected, so that tests never depend on the wall clock.

use chrono::{DateTime, Local, TimeZone, Utc};

/// The hub's source of time and its way of showing a time to users.
pub trait Clock: Send {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
    /// Formats a time as `dd.mm.yy,HH:MM` (strftime `%d.%m.%y,%H:%M`).
    fn stamp(&self, unix: i64) -> String;
}

/// The format of every time a user sees.
pub const STAMP_FORMAT: &str = "%d.%m.%y,%H:%M";

/// The system clock, shown in the server's local time zone.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        Utc::now().timestamp()
    }

    fn stamp(&self, unix: i64) -> String {
        match Local.timestamp_opt(unix, 0).single() {
            Some(t) => t.format(STAMP_FORMAT).to_string(),
            None => Utc
                .timestamp_opt(unix, 0)
                .single()
                .unwrap_or(DateTime::UNIX_EPOCH)
                .format(STAMP_FORMAT)
                .to_string(),
        }
    }
}

/// A clock that stands still (shown in UTC), for tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }

    fn stamp(&self, unix: i64) -> String {
        Utc.timestamp_opt(unix, 0)
            .single()
            .unwrap_or(DateTime::UNIX_EPOCH)
            .format(STAMP_FORMAT)
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_use_the_course_format() {
        // 2026-03-04 05:06:07 UTC
        let clock = FixedClock(1_772_600_767);
        assert_eq!(clock.stamp(clock.now()), "04.03.26,05:06");
    }

    #[test]
    fn the_system_clock_formats_in_local_time() {
        let t = 1_772_600_767;
        let expected = Local
            .timestamp_opt(t, 0)
            .unwrap()
            .format("%d.%m.%y,%H:%M")
            .to_string();
        assert_eq!(SystemClock.stamp(t), expected);
    }
}
