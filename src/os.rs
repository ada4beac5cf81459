//! What the operating system tells and allows a process: the open-file limit, the host name,
//! the priority of the threads beside the event loop.

/// Raises the soft limit of open files to the hard limit; returns the limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// This machine's host name (empty when it cannot be read).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The nice value of the threads that do slow work beside the event loop (storage writes,
/// searches, password hashing): below the loop, so that on a shared core the loop's turn is
/// never cut short by them. They still get every moment the loop leaves idle, and when the
/// writer falls behind, the loop stops reading and sleeps until it catches up (see
/// `STORAGE_HIGH_WATER` in `server.rs`), so history is never starved.
pub const BACKGROUND_NICE: i32 = 10;

/// Gives the calling thread the nice value `nice`, or leaves a higher one (a lower priority)
/// as it is; Linux keeps nice values per thread. Returns the thread's nice value now.
pub fn lower_thread_priority(nice: i32) -> std::io::Result<i32> {
    // SAFETY: gettid, getpriority and setpriority take no pointers.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
    let now = thread_nice(tid)?;
    if now >= nice {
        return Ok(now);
    }
    // SAFETY: as above.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(nice)
}

/// The nice value of thread `tid` (getpriority's -1 is a value as well as the error mark,
/// so errno tells them apart).
fn thread_nice(tid: libc::id_t) -> std::io::Result<i32> {
    // SAFETY: errno is this thread's own; getpriority takes no pointers.
    unsafe {
        *libc::__errno_location() = 0;
        let value = libc::getpriority(libc::PRIO_PROCESS, tid);
        if value == -1 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error().is_some_and(|n| n != 0) {
                return Err(e);
            }
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This thread's nice value (asking for the highest priority only reads it).
    fn nice_now() -> i32 {
        lower_thread_priority(i32::MIN).expect("read this thread's nice value")
    }

    #[test]
    fn a_thread_lowers_its_own_priority_and_no_other() {
        let before = nice_now();
        let target = (before + 3).min(19);
        let got = std::thread::spawn(move || lower_thread_priority(target))
            .join()
            .expect("the thread ran")
            .expect("lowered");
        assert_eq!(got, target);
        assert_eq!(nice_now(), before, "only the thread that asked is lowered");
        // A thread already below the asked value stays where it is.
        let kept = std::thread::spawn(move || {
            lower_thread_priority(target)?;
            lower_thread_priority(target - 1)
        })
        .join()
        .expect("the thread ran")
        .expect("read");
        assert_eq!(kept, target);
    }
}
