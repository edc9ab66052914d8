//! Unwinding a thread of a core offline: DWARF CFI (`.eh_frame`, `.debug_frame`) where a
//! module's file gives it, frame pointers where it does not (both through framehop), and stack
//! scanning as the last resort — each frame saying how it was found, as minidump-stackwalk's
//! frame trust does.

use std::borrow::Cow;

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};
use object::{Object, ObjectSection};

use crate::elfcore::{Core, Thread};
use crate::modules::LoadedModule;

/// How a frame was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trust {
    /// The thread's registers: its instruction pointer.
    Context,
    /// The call frame information of the frame below it (DWARF CFI).
    Cfi,
    /// The frame pointer chain (no CFI for the frame below it).
    FramePointer,
    /// A word on the stack that points just past a call: a guess, marked as one.
    Scan,
}

impl Trust {
    /// As printed and in JSON: `context`, `cfi`, `frame pointer`, `scan`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Context => "context",
            Self::Cfi => "cfi",
            Self::FramePointer => "frame pointer",
            Self::Scan => "scan",
        }
    }
}

/// One frame of a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeFrame {
    /// The instruction pointer (the first frame, a frame a signal interrupted), the signal
    /// trampoline's address, or a return address (the others).
    pub address: u64,
    /// How it was found.
    pub trust: Trust,
    /// The signal trampoline (`__restore_rt`) a handler returns into: the frame below it is
    /// a signal handler, the one above it the code the signal interrupted.
    pub signal_trampoline: bool,
    /// `address` is the instruction itself, not the one after a call: the registers'
    /// instruction pointer, the trampoline, or a return address no call precedes (a call the
    /// runtime injected: Go's `sigpanic` returns to the faulting instruction).
    pub exact: bool,
}

impl NativeFrame {
    /// Whether `address` is a return address, to be looked up at `address - 1` so that the
    /// call is found.
    pub fn is_return_address(&self) -> bool {
        !self.exact
    }

    fn at(address: u64, trust: Trust) -> Self {
        Self {
            address,
            trust,
            signal_trampoline: false,
            exact: trust == Trust::Context,
        }
    }
}

/// `mov $0xf, %rax; syscall`: x86_64's `rt_sigreturn` trampoline.
const SIGRETURN: [u8; 9] = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];

/// The registers a signal interrupted, as the kernel saved them.
struct SignalContext {
    ip: u64,
    sp: u64,
    bp: u64,
}

/// The interrupted registers of the signal frame at `sp`, the stack pointer when a handler
/// has returned into the trampoline: a `ucontext_t` (`uc_flags`, `uc_link`, `uc_stack`, then
/// `uc_mcontext.gregs`: r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, …).
fn signal_context(core: &Core<'_>, sp: u64) -> Option<SignalContext> {
    let gregs = sp.checked_add(40)?;
    let reg = |i: u64| core.read_u64(gregs.checked_add(8 * i)?);
    Some(SignalContext {
        bp: reg(10)?,
        sp: reg(15)?,
        ip: reg(16)?,
    })
}

/// The deepest stack walked, in frames.
pub const MAX_FRAMES: usize = 512;
/// How far a scan looks up the stack for a return address, in words.
pub const SCAN_WORDS: u64 = 1024;

/// A module's unwind data: the sections framehop reads, and where its CFI covers.
struct Unwind<'a> {
    start: u64,
    end: u64,
    bias: u64,
    /// Covered address ranges (file virtual addresses), sorted.
    fdes: Vec<(u64, u64)>,
    text: Option<(u64, &'a [u8])>,
}

/// The unwinder of one core: its modules with whatever unwind data their files give (borrowed
/// from the files, or decompressed: Go compresses its `.debug_frame`).
pub struct CoreUnwinder<'a> {
    unwinder: UnwinderX86_64<Cow<'a, [u8]>>,
    modules: Vec<Unwind<'a>>,
}

impl std::fmt::Debug for CoreUnwinder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreUnwinder")
            .field("modules", &self.modules.len())
            .finish_non_exhaustive()
    }
}

impl<'a> CoreUnwinder<'a> {
    /// An unwinder over `modules`, `files[i]` being the bytes of an ELF file of module `i`
    /// (the binary itself, or a debug file with `.debug_frame`), or `None` (frame pointers and
    /// scanning only).
    pub fn new(modules: &[LoadedModule], files: &[Option<&'a [u8]>]) -> Self {
        let mut unwinder = UnwinderX86_64::new();
        let mut out = Vec::new();
        for (m, file) in modules.iter().zip(files) {
            let mut info = ExplicitModuleSectionInfo::<Cow<'a, [u8]>>::default();
            let mut fdes = Vec::new();
            let mut text = None;
            if let Some(obj) = file.and_then(|bytes| object::File::parse(bytes).ok()) {
                let section = |name: &str| {
                    obj.section_by_name(name).and_then(|s| {
                        let data = s.uncompressed_data().ok().filter(|d| !d.is_empty())?;
                        Some((s.address()..s.address().saturating_add(s.size()), data))
                    })
                };
                if let Some((range, Cow::Borrowed(data))) = section(".text") {
                    text = Some((range.start, data));
                    info.text_svma = Some(range);
                    info.text = Some(Cow::Borrowed(data));
                }
                if let Some((range, data)) = section(".eh_frame") {
                    fdes.extend(crate::cfi::eh_frame_ranges(&data, range.start));
                    info.eh_frame_svma = Some(range);
                    info.eh_frame = Some(data);
                }
                if let Some((range, data)) = section(".eh_frame_hdr") {
                    info.eh_frame_hdr_svma = Some(range);
                    info.eh_frame_hdr = Some(data);
                }
                if let Some((_, data)) = section(".debug_frame") {
                    fdes.extend(crate::cfi::debug_frame_ranges(&data));
                    info.debug_frame = Some(data);
                }
                if let Some((range, _)) = section(".got") {
                    info.got_svma = Some(range);
                }
            }
            fdes.sort_unstable();
            info.base_svma = 0;
            unwinder.add_module(Module::new(
                m.path.clone(),
                m.start..m.end,
                m.load_bias,
                info,
            ));
            out.push(Unwind {
                start: m.start,
                end: m.end,
                bias: m.load_bias,
                fdes,
                text,
            });
        }
        Self {
            unwinder,
            modules: out,
        }
    }

    fn module(&self, address: u64) -> Option<&Unwind<'a>> {
        self.modules
            .iter()
            .find(|m| address >= m.start && address < m.end)
    }

    /// Whether CFI covers `address` (a runtime address).
    fn has_cfi(&self, address: u64) -> bool {
        self.module(address).is_some_and(|m| {
            let svma = address.wrapping_sub(m.bias);
            let at = m.fdes.partition_point(|&(start, _)| start <= svma);
            at.checked_sub(1).is_some_and(|i| svma < m.fdes[i].1)
        })
    }

    /// Whether `address` could be a return address: in executable memory of the process
    /// and, where the module's code is at hand, just past a call instruction.
    fn plausible_return(&self, core: &Core<'_>, address: u64) -> bool {
        core.executable(address) && self.follows_call(address)
    }

    /// Whether a call instruction ends at `address`; true where the code is not at hand.
    fn follows_call(&self, address: u64) -> bool {
        let Some(m) = self.module(address) else {
            return true;
        };
        let Some((text_start, text)) = m.text else {
            return true;
        };
        let svma = address.wrapping_sub(m.bias);
        let Some(off) = svma.checked_sub(text_start) else {
            return true;
        };
        let off = off as usize;
        if off > text.len() {
            return true;
        }
        let before = |n: usize| off.checked_sub(n).and_then(|i| text.get(i)).copied();
        // `call rel32`: E8 and four bytes; `call r/m64`: FF /2, two to seven bytes with
        // its ModRM, SIB and displacement.
        before(5) == Some(0xe8)
            || (2..=7).any(|n| {
                before(n) == Some(0xff) && before(n - 1).is_some_and(|modrm| (modrm >> 3) & 7 == 2)
            })
    }

    /// The module's code bytes at `address`, as many as it has up to `len`.
    fn code(&self, address: u64, len: usize) -> Option<&'a [u8]> {
        let m = self.module(address)?;
        let (text_start, text) = m.text?;
        let off = address.wrapping_sub(m.bias).checked_sub(text_start)? as usize;
        text.get(off..off.checked_add(len)?.min(text.len()))
    }

    /// Whether `address` is the kernel's way back from a signal handler: `mov $15, %rax;
    /// syscall` (`rt_sigreturn`, glibc's `__restore_rt`), which a handler returns into.
    fn is_sigreturn(&self, address: u64) -> bool {
        self.code(address, SIGRETURN.len()) == Some(&SIGRETURN[..])
    }

    /// The frames of `thread`, innermost first.
    pub fn unwind(&self, core: &Core<'_>, thread: &Thread) -> Vec<NativeFrame> {
        let regs = &thread.registers;
        let mut frames = vec![NativeFrame::at(regs.ip(), Trust::Context)];
        let mut cache = CacheX86_64::new();
        let mut state = UnwindRegsX86_64::new(regs.ip(), regs.sp(), regs.bp());
        let mut address = FrameAddress::from_instruction_pointer(regs.ip());
        let mut read = |at: u64| core.read_u64(at).ok_or(());
        while frames.len() < MAX_FRAMES {
            let lookup = address.address_for_lookup();
            let before = state;
            let step = self
                .unwinder
                .unwind_frame(address, &mut state, &mut cache, &mut read);
            let (next, trust) = match step {
                // A signal handler returning into the trampoline: the interrupted code's
                // registers are in the signal frame the kernel pushed, right above.
                Ok(Some(ra)) if self.is_sigreturn(ra) => {
                    frames.push(NativeFrame {
                        address: ra,
                        trust: if self.has_cfi(lookup) {
                            Trust::Cfi
                        } else {
                            Trust::FramePointer
                        },
                        signal_trampoline: true,
                        exact: true,
                    });
                    let Some(context) = signal_context(core, state.sp()) else {
                        break;
                    };
                    state = UnwindRegsX86_64::new(context.ip, context.sp, context.bp);
                    address = FrameAddress::from_instruction_pointer(context.ip);
                    frames.push(NativeFrame::at(context.ip, Trust::Context));
                    continue;
                }
                // CFI and the frame pointer chain are believed wherever they lead into code:
                // a return address need not follow a call (Go's sigpanic returns to the
                // faulting instruction, as if the faulting function had called it).
                Ok(Some(ra)) if core.executable(ra) => {
                    let trust = if self.has_cfi(lookup) {
                        Trust::Cfi
                    } else {
                        Trust::FramePointer
                    };
                    if !self.follows_call(ra) {
                        // An injected call: the caller stopped at `ra` itself.
                        frames.push(NativeFrame {
                            exact: true,
                            ..NativeFrame::at(ra, trust)
                        });
                        address = FrameAddress::from_instruction_pointer(ra);
                        // Without CFI, a function that faulted before making a frame of its
                        // own (a leaf: Go gives small leaves none) has its return address
                        // right at the stack pointer; the frame pointer still names its
                        // caller's frame, which would be skipped. Take that word if it is
                        // one, marked as the guess it is.
                        if trust == Trust::FramePointer
                            && let Some(word) = core.read_u64(state.sp())
                            && self.plausible_return(core, word)
                        {
                            frames.push(NativeFrame::at(word, Trust::Scan));
                            state.set_sp(state.sp().wrapping_add(8));
                            state.set_ip(word);
                            if let Some(a) = FrameAddress::from_return_address(word) {
                                address = a;
                            }
                        }
                        continue;
                    }
                    (ra, trust)
                }
                // The end of the stack: CFI says the return address is undefined (`_start`,
                // a thread's start), or the frame pointer chain ends at 0.
                Ok(None) => break,
                // Nothing sound: look up the stack for a return address.
                _ => {
                    state = before;
                    match self.scan(core, &state) {
                        Some((ra, slot)) => {
                            state.set_sp(slot.wrapping_add(8));
                            state.set_ip(ra);
                            (ra, Trust::Scan)
                        }
                        None => break,
                    }
                }
            };
            frames.push(NativeFrame::at(next, trust));
            match FrameAddress::from_return_address(next) {
                Some(a) => address = a,
                None => break,
            }
        }
        frames
    }

    /// The first word at or above the stack pointer that points just past a call, and where
    /// it was.
    fn scan(&self, core: &Core<'_>, state: &UnwindRegsX86_64) -> Option<(u64, u64)> {
        let sp = state.sp();
        (0..SCAN_WORDS).find_map(|i| {
            let slot = sp.checked_add(8 * i)?;
            let word = core.read_u64(slot)?;
            self.plausible_return(core, word).then_some((word, slot))
        })
    }
}
