//! Walking the current thread's stack into raw, unresolved frame addresses.
//!
//! The walk uses libgcc's unwinder directly (`_Unwind_Backtrace`), the one std itself unwinds
//! panics with, so it reads the same `.eh_frame` tables and needs no symbols: it works in a
//! stripped binary. The `backtrace` crate would do the same walk but brings a symbolizer, which
//! must not run in a crashing process (it reads debug info, allocates a lot and can take
//! seconds); symbolization happens later, elsewhere, from the record.

/// Frames beyond this are dropped: a runaway recursion should not produce a huge record, and the
/// interesting frames of a panic are the innermost ones.
pub(crate) const MAX_FRAMES: usize = 256;

/// One frame as the unwinder reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawFrame {
    /// The instruction pointer of the frame.
    pub(crate) address: u64,
    /// Whether `address` is the exact instruction (a signal frame) rather than a return address.
    pub(crate) exact: bool,
}

/// The current thread's frames, innermost first, including this function and its callers in
/// this crate and in std's panic machinery; the analyzer trims those.
#[inline(never)]
pub(crate) fn capture() -> Vec<RawFrame> {
    sys::capture()
}

#[cfg(all(target_os = "linux", not(target_arch = "arm")))]
mod sys {
    use std::ffi::{c_int, c_void};

    use super::{MAX_FRAMES, RawFrame};

    /// libgcc's opaque `struct _Unwind_Context`.
    #[repr(C)]
    struct UnwindContext {
        _opaque: [u8; 0],
    }

    /// `_Unwind_Reason_Code` values (a C enum, so an `int`).
    const URC_NO_REASON: c_int = 0;
    const URC_NORMAL_STOP: c_int = 4;

    type TraceFn = extern "C" fn(context: *mut UnwindContext, arg: *mut c_void) -> c_int;

    // std links libgcc_s (or the LLVM libunwind on musl, which has the same entry points) for
    // its own unwinding, so these resolve without a link attribute of our own. 32-bit ARM is
    // excluded: its EHABI unwinder has no `_Unwind_GetIPInfo` function.
    unsafe extern "C" {
        fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> c_int;
        fn _Unwind_GetIPInfo(context: *mut UnwindContext, ip_before_insn: *mut c_int) -> usize;
    }

    pub(super) fn capture() -> Vec<RawFrame> {
        // Allocated up front so the callback never allocates while the unwinder runs.
        let mut frames: Vec<RawFrame> = Vec::with_capacity(MAX_FRAMES);
        // SAFETY: `trace` matches `_Unwind_Trace_Fn`, and `arg` points to `frames`, which lives
        // across the call; the unwinder calls `trace` synchronously on this thread and does not
        // keep `arg`. The return value only says why the walk stopped, which does not matter:
        // whatever frames were collected are kept.
        unsafe {
            _Unwind_Backtrace(trace, (&raw mut frames).cast::<c_void>());
        }
        frames
    }

    extern "C" fn trace(context: *mut UnwindContext, arg: *mut c_void) -> c_int {
        // SAFETY: `arg` is the `&mut Vec<RawFrame>` passed by `capture`, not aliased meanwhile.
        let frames = unsafe { &mut *arg.cast::<Vec<RawFrame>>() };
        if frames.len() >= MAX_FRAMES {
            return URC_NORMAL_STOP;
        }
        let mut ip_before_insn: c_int = 0;
        // SAFETY: `context` is the live context the unwinder passed to this callback, and
        // `ip_before_insn` is a valid place for the flag.
        let ip = unsafe { _Unwind_GetIPInfo(context, &mut ip_before_insn) };
        if ip == 0 {
            // The outermost frame (`_start`'s caller) has no address; the walk is over.
            return URC_NORMAL_STOP;
        }
        frames.push(RawFrame {
            address: ip as u64,
            exact: ip_before_insn != 0,
        });
        URC_NO_REASON
    }
}

#[cfg(not(all(target_os = "linux", not(target_arch = "arm"))))]
mod sys {
    /// Other targets get records without frames rather than a build failure.
    pub(super) fn capture() -> Vec<super::RawFrame> {
        Vec::new()
    }
}

#[cfg(all(test, target_os = "linux", not(target_arch = "arm")))]
mod tests {
    use super::*;
    use crate::modules;

    #[inline(never)]
    fn nested(depth: u32) -> Vec<RawFrame> {
        if std::hint::black_box(depth) == 0 {
            capture()
        } else {
            let frames = nested(depth - 1);
            std::hint::black_box(frames)
        }
    }

    #[test]
    fn walks_through_this_executable() {
        let frames = nested(5);
        assert!(frames.len() > 6, "{frames:x?}");
        assert!(frames.len() <= MAX_FRAMES);
        let modules = modules::loaded();
        let exe = modules.first().unwrap_or_else(|| panic!("no modules"));
        // The innermost frames are this test's own code.
        let in_exe = frames
            .iter()
            .take(6)
            .filter(|f| exe.contains(f.address - u64::from(!f.exact)))
            .count();
        assert_eq!(in_exe, 6, "{frames:x?}\n{exe:x?}");
    }

    #[test]
    fn stops_at_the_frame_limit() {
        let frames = nested(300);
        assert_eq!(frames.len(), MAX_FRAMES);
    }
}
