//! Linux signals as crash reports name them: numbers to names, and what `si_code` says of how a
//! signal was raised. Shared by Go tracebacks (faultline-dump) and cores (faultline-native).

/// The name of signal `signo` on Linux x86_64 (`SIGSEGV`), or `None` for one without a name here.
pub fn name(signo: u32) -> Option<&'static str> {
    Some(match signo {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return None,
    })
}

/// What `si_code` means for the signal named `signal` (Linux, `siginfo.h`).
pub fn code_meaning(signal: &str, code: i64) -> Option<&'static str> {
    Some(match (signal, code) {
        (_, 0) => "SI_USER: sent by kill",
        (_, 0x80) => "SI_KERNEL: sent by the kernel",
        (_, -1) => "SI_QUEUE: sent by sigqueue",
        (_, -6) => "SI_TKILL: sent by tkill or tgkill",
        ("SIGSEGV", 1) => "SEGV_MAPERR: address not mapped to object",
        ("SIGSEGV", 2) => "SEGV_ACCERR: invalid permissions for mapped object",
        ("SIGSEGV", 3) => "SEGV_BNDERR: failed address bound checks",
        ("SIGSEGV", 4) => "SEGV_PKUERR: access denied by memory protection keys",
        ("SIGBUS", 1) => "BUS_ADRALN: invalid address alignment",
        ("SIGBUS", 2) => "BUS_ADRERR: nonexistent physical address",
        ("SIGBUS", 3) => "BUS_OBJERR: object-specific hardware error",
        ("SIGFPE", 1) => "FPE_INTDIV: integer divide by zero",
        ("SIGFPE", 2) => "FPE_INTOVF: integer overflow",
        ("SIGFPE", 3) => "FPE_FLTDIV: floating-point divide by zero",
        ("SIGFPE", 4) => "FPE_FLTOVF: floating-point overflow",
        ("SIGFPE", 5) => "FPE_FLTUND: floating-point underflow",
        ("SIGFPE", 6) => "FPE_FLTRES: floating-point inexact result",
        ("SIGFPE", 7) => "FPE_FLTINV: invalid floating-point operation",
        ("SIGFPE", 8) => "FPE_FLTSUB: subscript out of range",
        ("SIGILL", 1) => "ILL_ILLOPC: illegal opcode",
        ("SIGILL", 2) => "ILL_ILLOPN: illegal operand",
        ("SIGILL", 3) => "ILL_ILLADR: illegal addressing mode",
        ("SIGILL", 4) => "ILL_ILLTRP: illegal trap",
        ("SIGILL", 5) => "ILL_PRVOPC: privileged opcode",
        ("SIGILL", 6) => "ILL_PRVREG: privileged register",
        ("SIGILL", 7) => "ILL_COPROC: coprocessor error",
        ("SIGILL", 8) => "ILL_BADSTK: internal stack error",
        ("SIGTRAP", 1) => "TRAP_BRKPT: process breakpoint",
        ("SIGTRAP", 2) => "TRAP_TRACE: process trace trap",
        _ => return None,
    })
}
