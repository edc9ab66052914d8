//! A fault held in the foreground waits for its duration or for the user to stop it.

use std::time::{Duration, Instant};

/// SIGINT, SIGTERM and SIGHUP, blocked so they can be taken synchronously: a Ctrl-C ends the
/// wait early, and the caller still reverts. Create it before starting any thread (the mask is
/// per thread, and new threads inherit it).
#[derive(Debug)]
pub struct Interrupts {
    set: libc::sigset_t,
}

impl Interrupts {
    /// Blocks the three signals on the calling thread.
    pub fn block() -> Self {
        // SAFETY: building a signal set and changing this thread's mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, signal);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Self { set }
        }
    }

    /// Waits `duration`, or until one of the signals arrives: returns it.
    pub fn wait(&self, duration: Duration) -> Option<i32> {
        let end = Instant::now() + duration;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let timeout = libc::timespec {
                tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::from(left.subsec_nanos()),
            };
            // SAFETY: a valid set and timeout; no siginfo wanted.
            let signal = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &timeout) };
            if signal > 0 {
                return Some(signal);
            }
            // EAGAIN: time is up (checked above); EINTR: another signal, keep waiting.
        }
    }
}
