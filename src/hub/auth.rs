//! Lockouts that slow password guessing down across connections (section 6).
//!
//! Per name: after 3 wrong passwords in a row (from any connections) the next `/identify` is
//! refused for 10 seconds, then 20, 40… up to an hour, doubling at each further wrong
//! password; a right one resets the count. Per client address: more than 20 wrong passwords
//! within a minute, whatever the names, and the address is refused for a minute. An IPv6
//! address counts by its /64, which is what one home or one phone gets.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// The first lockout of a name, in seconds.
pub const LOCK_FIRST_SECS: u64 = 10;
/// The longest lockout of a name, in seconds.
pub const LOCK_MAX_SECS: u64 = 3600;
/// Wrong passwords in a row before a name is locked.
const STREAK: u32 = 3;
/// An address may send this many wrong passwords within [`ADDR_WINDOW`] seconds.
const ADDR_MAX: usize = 20;
const ADDR_WINDOW: i64 = 60;
/// How long an address that sent too many is refused.
const ADDR_LOCK: i64 = 60;

#[derive(Debug, Default)]
struct NameState {
    wrong: u32,
    until: i64,
    last: i64,
}

#[derive(Debug, Default)]
struct AddrState {
    wrongs: VecDeque<i64>,
    until: i64,
}

/// The lockout state of names and addresses.
#[derive(Debug, Default)]
pub(super) struct Guard {
    names: HashMap<Box<str>, NameState>,
    addrs: HashMap<IpAddr, AddrState>,
}

/// The part of an address that identifies one client: an IPv6 address by its /64.
fn addr_class(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(seg.into())
        }
    }
}

impl Guard {
    /// Seconds until `key` (or `addr`) may try a password again; None when it may now.
    pub(super) fn locked(&self, key: &str, addr: Option<IpAddr>, now: i64) -> Option<u64> {
        let name_until = self.names.get(key).map_or(0, |s| s.until);
        let addr_until = addr
            .and_then(|a| self.addrs.get(&addr_class(a)))
            .map_or(0, |s| s.until);
        let until = name_until.max(addr_until);
        (until > now).then(|| u64::try_from(until - now).unwrap_or(1).max(1))
    }

    /// Counts a password check's outcome.
    pub(super) fn record(&mut self, key: &str, addr: Option<IpAddr>, ok: bool, now: i64) {
        if ok {
            self.names.remove(key);
            return;
        }
        let state = self.names.entry(key.into()).or_default();
        state.wrong = state.wrong.saturating_add(1);
        state.last = now;
        if state.wrong >= STREAK {
            let doublings = (state.wrong - STREAK).min(16);
            let secs = (LOCK_FIRST_SECS << doublings).min(LOCK_MAX_SECS);
            state.until = now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX));
        }
        if let Some(addr) = addr {
            let state = self.addrs.entry(addr_class(addr)).or_default();
            while state
                .wrongs
                .front()
                .is_some_and(|&t| t <= now - ADDR_WINDOW)
            {
                state.wrongs.pop_front();
            }
            state.wrongs.push_back(now);
            if state.wrongs.len() > ADDR_MAX {
                state.until = now.saturating_add(ADDR_LOCK);
                state.wrongs.clear();
            }
        }
    }

    /// Forgets what no longer matters: addresses with nothing recent, names whose last wrong
    /// password is older than the longest lockout.
    pub(super) fn expire(&mut self, now: i64) {
        let max = i64::try_from(LOCK_MAX_SECS).unwrap_or(i64::MAX);
        self.names
            .retain(|_, s| s.until > now || s.last > now.saturating_sub(max));
        self.addrs.retain(|_, s| {
            s.until > now || s.wrongs.back().is_some_and(|&t| t > now - ADDR_WINDOW)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn a_name_is_locked_after_three_wrong_and_the_lock_doubles() {
        let mut g = Guard::default();
        let t = 1000;
        g.record("bob", None, false, t);
        g.record("bob", None, false, t);
        assert_eq!(g.locked("bob", None, t), None);
        g.record("bob", None, false, t);
        assert_eq!(g.locked("bob", None, t), Some(10));
        assert_eq!(g.locked("bob", None, t + 4), Some(6));
        assert_eq!(g.locked("bob", None, t + 10), None);
        g.record("bob", None, false, t + 10);
        assert_eq!(g.locked("bob", None, t + 10), Some(20));
        g.record("bob", None, false, t + 30);
        assert_eq!(g.locked("bob", None, t + 30), Some(40));
        for _ in 0..20 {
            g.record("bob", None, false, t + 100);
        }
        assert_eq!(g.locked("bob", None, t + 100), Some(LOCK_MAX_SECS));
        // Other names are not affected; a right password resets.
        assert_eq!(g.locked("alice", None, t + 100), None);
        g.record("bob", None, true, t + 100);
        assert_eq!(g.locked("bob", None, t + 100), None);
    }

    #[test]
    fn an_address_is_locked_after_more_than_twenty_in_a_minute() {
        let mut g = Guard::default();
        let t = 5000;
        for i in 0..20 {
            // Twenty names, one wrong password each: no name is locked.
            g.record(&format!("n{i}"), ADDR, false, t + i);
        }
        assert_eq!(g.locked("fresh", ADDR, t + 20), None);
        g.record("n20", ADDR, false, t + 20);
        assert_eq!(g.locked("fresh", ADDR, t + 20), Some(60));
        // Another address is not locked.
        let other = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(g.locked("fresh", other, t + 20), None);
        // Wrong passwords spread over more than a minute never lock.
        let mut g = Guard::default();
        for i in 0..100 {
            g.record(&format!("m{i}"), ADDR, false, t + i * 4);
        }
        assert_eq!(g.locked("fresh", ADDR, t + 400), None);
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(addr_class(a), addr_class(b));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_ne!(addr_class(a), addr_class(c));
    }

    #[test]
    fn expire_forgets_old_entries() {
        let mut g = Guard::default();
        g.record("bob", ADDR, false, 0);
        g.expire(10_000);
        assert!(g.names.is_empty() && g.addrs.is_empty());
    }
}
