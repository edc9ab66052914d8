//! Minidumps, the Breakpad/Crashpad format Sentry, minidump-stackwalk and rust-minidump read,
//! both ways.
//!
//! - [`write`] turns a core (the handler's compact one, or any other) into a minidump: the
//!   threads and their registers (`CONTEXT_AMD64`), the signal (the exception stream, as
//!   Breakpad writes it on Linux: the signal number as the exception code, `si_code` as its
//!   flags), the modules with their GNU build-ids (CodeView `BpEL` records), every byte of
//!   memory the core holds, where memory was executable (the memory info list), the mapped
//!   files (`/proc/PID/maps`, Breakpad's Linux stream), the process's id, name and command
//!   line. The records are minidump-common's; minidump-writer dumps only a live process it
//!   can ptrace, and a core handler has none.
//! - [`read`] reads one with the `minidump` crate (rust-minidump) into the same [`Core`] an ELF
//!   core gives, so it unwinds with the same code.

use minidump::{
    Minidump, MinidumpException, MinidumpMemoryInfoList, MinidumpMiscInfo, MinidumpModuleList,
    MinidumpRawContext, MinidumpSystemInfo, MinidumpThreadList,
};
use minidump_common::format as md;
use scroll::ctx::{SizeWith, TryIntoCtx};
use scroll::{Endian, LE, Pwrite};

use faultline_record::BuildId;

use crate::elfcore::{self, Core, CoreError, Mapping, Region, Registers, SignalInfo, Thread};
use crate::modules::LoadedModule;

/// Whether `data` starts like a minidump (`MDMP`).
pub fn looks_like_minidump(data: &[u8]) -> bool {
    data.starts_with(b"MDMP")
}

/// Stream types that minidump-common names only as an enum.
const THREAD_LIST: u32 = md::MINIDUMP_STREAM_TYPE::ThreadListStream as u32;
const MODULE_LIST: u32 = md::MINIDUMP_STREAM_TYPE::ModuleListStream as u32;
const MEMORY_LIST: u32 = md::MINIDUMP_STREAM_TYPE::MemoryListStream as u32;
const EXCEPTION: u32 = md::MINIDUMP_STREAM_TYPE::ExceptionStream as u32;
const SYSTEM_INFO: u32 = md::MINIDUMP_STREAM_TYPE::SystemInfoStream as u32;
const MISC_INFO: u32 = md::MINIDUMP_STREAM_TYPE::MiscInfoStream as u32;
const MEMORY_INFO_LIST: u32 = md::MINIDUMP_STREAM_TYPE::MemoryInfoListStream as u32;
const LINUX_CMD_LINE: u32 = md::MINIDUMP_STREAM_TYPE::LinuxCmdLine as u32;
const LINUX_PROC_STATUS: u32 = md::MINIDUMP_STREAM_TYPE::LinuxProcStatus as u32;
const LINUX_MAPS: u32 = md::MINIDUMP_STREAM_TYPE::LinuxMaps as u32;

/// The exception code of a dump a program asked for (no signal): Breakpad's
/// `MD_EXCEPTION_CODE_LIN_DUMP_REQUESTED`.
const DUMP_REQUESTED: u32 = 0xffff_ffff;
/// `CONTEXT_AMD64 | CONTEXT_CONTROL | CONTEXT_INTEGER | CONTEXT_SEGMENTS`.
const CONTEXT_FLAGS: u32 = 0x0010_0007;
/// A CodeView record of an ELF build-id: `BpEL`.
const CV_ELF: u32 = 0x4270_454c;
const PAGE_NOACCESS: u32 = 0x01;
const PAGE_READONLY: u32 = 0x02;
const PAGE_READWRITE: u32 = 0x04;
const PAGE_EXECUTE: u32 = 0x10;
const PAGE_EXECUTE_READ: u32 = 0x20;
const PAGE_EXECUTE_READWRITE: u32 = 0x40;
const MEM_COMMIT: u32 = 0x1000;
const MEM_PRIVATE: u32 = 0x20000;
const MEM_IMAGE: u32 = 0x0100_0000;

/// The minidump being written: streams appended, then the directory placed at the front.
struct Out {
    buf: Vec<u8>,
    directory: Vec<md::MINIDUMP_DIRECTORY>,
}

impl Out {
    fn align(&mut self) {
        while !self.buf.len().is_multiple_of(8) {
            self.buf.push(0);
        }
    }

    /// Appends `value` and says where it went.
    fn put<T>(&mut self, value: T) -> u32
    where
        T: TryIntoCtx<Endian, Error = scroll::Error> + SizeWith<Endian>,
    {
        self.align();
        let at = self.buf.len();
        self.buf.resize(at + T::size_with(&LE), 0);
        // The buffer was sized for it: the write cannot fail.
        let _ = self.buf.pwrite_with(value, at, LE);
        at as u32
    }

    fn put_bytes(&mut self, bytes: &[u8]) -> u32 {
        self.align();
        let at = self.buf.len();
        self.buf.extend_from_slice(bytes);
        at as u32
    }

    /// A `MINIDUMP_STRING`: its length in bytes, UTF-16LE, a NUL.
    fn put_string(&mut self, s: &str) -> u32 {
        let units: Vec<u16> = s.encode_utf16().collect();
        let mut bytes = Vec::with_capacity(4 + 2 * units.len() + 2);
        bytes.extend_from_slice(&((2 * units.len()) as u32).to_le_bytes());
        for u in units.iter().chain(std::iter::once(&0)) {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        self.put_bytes(&bytes)
    }

    fn stream(&mut self, stream_type: u32, rva: u32) {
        let data_size = self.buf.len() as u32 - rva;
        self.directory.push(md::MINIDUMP_DIRECTORY {
            stream_type,
            location: md::MINIDUMP_LOCATION_DESCRIPTOR { data_size, rva },
        });
    }
}

fn context(r: &Registers) -> md::CONTEXT_AMD64 {
    let g = |name| r.get(name).unwrap_or(0);
    md::CONTEXT_AMD64 {
        context_flags: CONTEXT_FLAGS,
        cs: g("cs") as u16,
        ds: g("ds") as u16,
        es: g("es") as u16,
        fs: g("fs") as u16,
        gs: g("gs") as u16,
        ss: g("ss") as u16,
        eflags: g("eflags") as u32,
        rax: g("rax"),
        rcx: g("rcx"),
        rdx: g("rdx"),
        rbx: g("rbx"),
        rsp: g("rsp"),
        rbp: g("rbp"),
        rsi: g("rsi"),
        rdi: g("rdi"),
        r8: g("r8"),
        r9: g("r9"),
        r10: g("r10"),
        r11: g("r11"),
        r12: g("r12"),
        r13: g("r13"),
        r14: g("r14"),
        r15: g("r15"),
        rip: g("rip"),
        ..Default::default()
    }
}

fn registers(c: &md::CONTEXT_AMD64) -> Registers {
    let mut r = Registers::default();
    let values = [
        ("r15", c.r15),
        ("r14", c.r14),
        ("r13", c.r13),
        ("r12", c.r12),
        ("rbp", c.rbp),
        ("rbx", c.rbx),
        ("r11", c.r11),
        ("r10", c.r10),
        ("r9", c.r9),
        ("r8", c.r8),
        ("rax", c.rax),
        ("rcx", c.rcx),
        ("rdx", c.rdx),
        ("rsi", c.rsi),
        ("rdi", c.rdi),
        ("rip", c.rip),
        ("cs", u64::from(c.cs)),
        ("eflags", u64::from(c.eflags)),
        ("rsp", c.rsp),
        ("ss", u64::from(c.ss)),
        ("ds", u64::from(c.ds)),
        ("es", u64::from(c.es)),
        ("fs", u64::from(c.fs)),
        ("gs", u64::from(c.gs)),
    ];
    for (name, value) in values {
        if let Some(i) = Registers::NAMES.iter().position(|n| *n == name) {
            r.0[i] = value;
        }
    }
    r
}

fn protection(flags: u32) -> u32 {
    let (r, w, x) = (
        flags & elfcore::READ != 0,
        flags & elfcore::WRITE != 0,
        flags & elfcore::EXECUTE != 0,
    );
    match (x, w, r) {
        (true, true, _) => PAGE_EXECUTE_READWRITE,
        (true, false, true) => PAGE_EXECUTE_READ,
        (true, false, false) => PAGE_EXECUTE,
        (false, true, _) => PAGE_READWRITE,
        (false, false, true) => PAGE_READONLY,
        (false, false, false) => PAGE_NOACCESS,
    }
}

fn flags_of_protection(p: u32) -> u32 {
    let p = p & 0xff;
    let mut flags = 0;
    if p & (PAGE_EXECUTE | PAGE_EXECUTE_READ | PAGE_EXECUTE_READWRITE | 0x80) != 0 {
        flags |= elfcore::EXECUTE;
    }
    if p & (PAGE_READWRITE | PAGE_EXECUTE_READWRITE | 0x08 | 0x80) != 0 {
        flags |= elfcore::WRITE;
    }
    if p != PAGE_NOACCESS && p != 0 {
        flags |= elfcore::READ;
    }
    flags
}

/// `core` (with its `modules`) as a minidump, stamped with `time` (Unix seconds).
///
/// The streams and the directory come first, the memory's bytes last: a minidump cut short
/// loses memory, not its threads, modules or signal.
pub fn write(core: &Core<'_>, modules: &[LoadedModule], time: u64) -> Vec<u8> {
    let regions: Vec<Region<'_>> = core.regions().filter(|r| !r.bytes.is_empty()).collect();
    // The head's length does not depend on where the memory goes: write it once to learn it.
    let base = write_at(core, modules, time, &regions, 0)
        .len()
        .next_multiple_of(8);
    let mut out = write_at(core, modules, time, &regions, base as u32);
    out.resize(base, 0);
    for r in &regions {
        out.resize(out.len().next_multiple_of(8), 0);
        out.extend_from_slice(r.bytes);
    }
    out
}

/// The head of [`write`]'s minidump, its memory's bytes to follow from `base` on.
fn write_at(
    core: &Core<'_>,
    modules: &[LoadedModule],
    time: u64,
    regions: &[Region<'_>],
    base: u32,
) -> Vec<u8> {
    let mut out = Out {
        buf: vec![0; md::MINIDUMP_HEADER::size_with(&LE)],
        directory: Vec::new(),
    };

    // System: x86_64 Linux.
    let csd = out.put_string("");
    let at = out.put(md::MINIDUMP_SYSTEM_INFO {
        processor_architecture: md::ProcessorArchitecture::PROCESSOR_ARCHITECTURE_AMD64 as u16,
        processor_level: 0,
        processor_revision: 0,
        number_of_processors: 1,
        product_type: 0,
        major_version: 0,
        minor_version: 0,
        build_number: 0,
        platform_id: md::PlatformId::Linux as u32,
        csd_version_rva: csd,
        suite_mask: 0,
        reserved2: 0,
        cpu: md::CPU_INFORMATION { data: [0; 24] },
    });
    out.stream(SYSTEM_INFO, at);

    let at = out.put(md::MINIDUMP_MISC_INFO {
        size_of_info: md::MINIDUMP_MISC_INFO::size_with(&LE) as u32,
        flags1: md::MiscInfoFlags::MINIDUMP_MISC1_PROCESS_ID.bits(),
        process_id: core.pid,
        process_create_time: 0,
        process_user_time: 0,
        process_kernel_time: 0,
    });
    out.stream(MISC_INFO, at);

    // Memory: every byte the core holds, once, after the head; thread stacks point into it.
    let mut next = base as usize;
    let placed: Vec<(u64, u64, u32)> = regions
        .iter()
        .map(|r| {
            let at = next.next_multiple_of(8);
            next = at + r.bytes.len();
            (r.start, r.bytes.len() as u64, at as u32)
        })
        .collect();
    let descriptor = |start: u64, len: u64, rva: u32| md::MINIDUMP_MEMORY_DESCRIPTOR {
        start_of_memory_range: start,
        memory: md::MINIDUMP_LOCATION_DESCRIPTOR {
            data_size: len as u32,
            rva,
        },
    };
    let mut list = (placed.len() as u32).to_le_bytes().to_vec();
    for &(start, len, rva) in &placed {
        let mut d = [0u8; 16];
        let _ = d.pwrite_with(descriptor(start, len, rva), 0, LE);
        list.extend_from_slice(&d);
    }
    let at = out.put_bytes(&list);
    out.stream(MEMORY_LIST, at);

    // Threads: their registers and the part of their stack the core holds, from the stack
    // pointer (less the red zone) on.
    let contexts: Vec<u32> = core
        .threads
        .iter()
        .map(|t| out.put(context(&t.registers)))
        .collect();
    let context_size = md::CONTEXT_AMD64::size_with(&LE) as u32;
    let mut list = (core.threads.len() as u32).to_le_bytes().to_vec();
    for (t, &ctx) in core.threads.iter().zip(&contexts) {
        let sp = t.registers.sp().saturating_sub(128);
        let stack = placed
            .iter()
            .find(|&&(start, len, _)| t.registers.sp() >= start && t.registers.sp() < start + len)
            .map(|&(start, len, rva)| {
                let from = sp.max(start);
                descriptor(from, start + len - from, rva + (from - start) as u32)
            })
            .unwrap_or(descriptor(t.registers.sp(), 0, 0));
        let thread = md::MINIDUMP_THREAD {
            thread_id: t.tid,
            suspend_count: 0,
            priority_class: 0,
            priority: 0,
            teb: 0,
            stack,
            thread_context: md::MINIDUMP_LOCATION_DESCRIPTOR {
                data_size: context_size,
                rva: ctx,
            },
        };
        let mut b = vec![0u8; md::MINIDUMP_THREAD::size_with(&LE)];
        let _ = b.pwrite_with(thread, 0, LE);
        list.extend_from_slice(&b);
    }
    let at = out.put_bytes(&list);
    out.stream(THREAD_LIST, at);

    // Modules, each with its build-id as a CodeView record.
    let names: Vec<u32> = modules.iter().map(|m| out.put_string(&m.path)).collect();
    let records: Vec<Option<(u32, u32)>> = modules
        .iter()
        .map(|m| {
            m.build_id.as_ref().map(|id| {
                let mut cv = CV_ELF.to_le_bytes().to_vec();
                cv.extend_from_slice(id.as_bytes());
                (out.put_bytes(&cv), cv.len() as u32)
            })
        })
        .collect();
    let mut list = (modules.len() as u32).to_le_bytes().to_vec();
    for ((m, &name), cv) in modules.iter().zip(&names).zip(&records) {
        let module = md::MINIDUMP_MODULE {
            base_of_image: m.start,
            size_of_image: m.end.saturating_sub(m.start).min(u64::from(u32::MAX)) as u32,
            module_name_rva: name,
            cv_record: cv.map_or(md::MINIDUMP_LOCATION_DESCRIPTOR::default(), |(rva, len)| {
                md::MINIDUMP_LOCATION_DESCRIPTOR {
                    data_size: len,
                    rva,
                }
            }),
            ..Default::default()
        };
        let mut b = vec![0u8; md::MINIDUMP_MODULE::size_with(&LE)];
        let _ = b.pwrite_with(module, 0, LE);
        list.extend_from_slice(&b);
    }
    let at = out.put_bytes(&list);
    out.stream(MODULE_LIST, at);

    // The signal, on the thread that took it (the core's first).
    if let Some(first) = core.threads.first() {
        let info = core.signal;
        let at = out.put(md::MINIDUMP_EXCEPTION_STREAM {
            thread_id: first.tid,
            __align: 0,
            exception_record: md::MINIDUMP_EXCEPTION {
                exception_code: info.map_or(first.signal, |i| i.signo),
                exception_flags: info.map_or(0, |i| i.code as u32),
                exception_record: 0,
                exception_address: info.and_then(|i| i.address).unwrap_or(0),
                number_parameters: 0,
                __align: 0,
                exception_information: [0; 15],
            },
            thread_context: md::MINIDUMP_LOCATION_DESCRIPTOR {
                data_size: context_size,
                rva: contexts[0],
            },
        });
        out.stream(EXCEPTION, at);
    }

    // Where memory was executable, and the mapped files.
    let all: Vec<Region<'_>> = core.regions().collect();
    let entry = md::MINIDUMP_MEMORY_INFO::size_with(&LE);
    let header = md::MINIDUMP_MEMORY_INFO_LIST::size_with(&LE);
    let mut list = vec![0u8; header];
    let _ = list.pwrite_with(
        md::MINIDUMP_MEMORY_INFO_LIST {
            size_of_header: header as u32,
            size_of_entry: entry as u32,
            number_of_entries: all.len() as u64,
        },
        0,
        LE,
    );
    for r in &all {
        let image = core
            .mappings
            .iter()
            .any(|m| r.start >= m.start && r.start < m.end);
        let info = md::MINIDUMP_MEMORY_INFO {
            base_address: r.start,
            allocation_base: r.start,
            allocation_protection: protection(r.flags),
            __alignment1: 0,
            region_size: r.size,
            state: MEM_COMMIT,
            protection: protection(r.flags),
            _type: if image { MEM_IMAGE } else { MEM_PRIVATE },
            __alignment2: 0,
        };
        let mut b = vec![0u8; entry];
        let _ = b.pwrite_with(info, 0, LE);
        list.extend_from_slice(&b);
    }
    let at = out.put_bytes(&list);
    out.stream(MEMORY_INFO_LIST, at);

    let mut maps = String::new();
    for m in &core.mappings {
        let flags = all
            .iter()
            .find(|r| m.start >= r.start && m.start < r.start.saturating_add(r.size))
            .map_or(elfcore::READ, |r| r.flags);
        let f = |bit: u32, c: char| if flags & bit != 0 { c } else { '-' };
        maps.push_str(&format!(
            "{:x}-{:x} {}{}{}p {:08x} 00:00 0 {}\n",
            m.start,
            m.end,
            f(elfcore::READ, 'r'),
            f(elfcore::WRITE, 'w'),
            f(elfcore::EXECUTE, 'x'),
            m.file_offset,
            m.path
        ));
    }
    let at = out.put_bytes(maps.as_bytes());
    out.stream(LINUX_MAPS, at);

    let mut status = String::new();
    if let Some(name) = &core.name {
        status.push_str(&format!("Name:\t{name}\n"));
    }
    status.push_str(&format!("Pid:\t{}\n", core.pid));
    let at = out.put_bytes(status.as_bytes());
    out.stream(LINUX_PROC_STATUS, at);
    if let Some(args) = &core.args {
        let mut line = args.clone().into_bytes();
        line.push(0);
        let at = out.put_bytes(&line);
        out.stream(LINUX_CMD_LINE, at);
    }

    // The directory, then the header that points at it.
    out.align();
    let directory_rva = out.buf.len() as u32;
    let entries = std::mem::take(&mut out.directory);
    let count = entries.len() as u32;
    for d in entries {
        let mut b = vec![0u8; md::MINIDUMP_DIRECTORY::size_with(&LE)];
        let _ = b.pwrite_with(d, 0, LE);
        out.buf.extend_from_slice(&b);
    }
    let header = md::MINIDUMP_HEADER {
        signature: md::MINIDUMP_SIGNATURE,
        version: md::MINIDUMP_VERSION,
        stream_count: count,
        stream_directory_rva: directory_rva,
        checksum: 0,
        time_date_stamp: time.min(u64::from(u32::MAX)) as u32,
        flags: 0,
    };
    let _ = out.buf.pwrite_with(header, 0, LE);
    out.buf
}

/// The minidump of the ELF core in `bytes` (the handler's small core), or `None` if it does
/// not read as one.
pub fn of_core(bytes: &[u8], time: u64) -> Option<Vec<u8>> {
    let core = Core::parse(bytes).ok()?;
    let modules = crate::modules::modules(&core);
    Some(write(&core, &modules, time))
}

/// One line of a `/proc/PID/maps` text: the range, whether executable, the file offset and
/// path (empty for anonymous memory).
fn maps_line(line: &str) -> Option<(u64, u64, u32, u64, &str)> {
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?.as_bytes();
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    let _dev = fields.next()?;
    let _inode = fields.next()?;
    let path = fields.next().unwrap_or("").trim_start();
    let mut flags = 0;
    for (i, bit) in [elfcore::READ, elfcore::WRITE, elfcore::EXECUTE]
        .into_iter()
        .enumerate()
    {
        if perms.get(i).is_some_and(|&c| c != b'-') {
            flags |= bit;
        }
    }
    Some((
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
        flags,
        offset,
        path,
    ))
}

/// A minidump read: its process as a [`Core`], and its modules (from the module list, with
/// what the ELF headers in its memory add: the load bias, the segments).
pub fn read(data: &[u8]) -> Result<(Core<'_>, Vec<LoadedModule>), CoreError> {
    let dump = Minidump::read(data)
        .map_err(|e| CoreError::Malformed(format!("not a minidump that can be read: {e}")))?;
    let mut missing = Vec::new();
    let system = dump
        .get_stream::<MinidumpSystemInfo>()
        .map_err(|e| CoreError::Malformed(format!("its system info stream cannot be read: {e}")))?;
    match system.cpu {
        minidump::system_info::Cpu::X86_64 => {}
        other => {
            return Err(CoreError::Architecture(format!(
                "{other} (a minidump; faultline unwinds x86_64)"
            )));
        }
    }
    if !matches!(system.os, minidump::system_info::Os::Linux) {
        return Err(CoreError::Malformed(format!(
            "a minidump of {}: faultline reads minidumps of Linux processes",
            system.os
        )));
    }
    let misc = dump.get_stream::<MinidumpMiscInfo>().ok();
    let exception = dump.get_stream::<MinidumpException<'_>>().ok();
    if exception.is_none() {
        missing.push("the exception stream (the signal and the thread that took it)".into());
    }

    let mut threads = Vec::new();
    let mut memory: Vec<Region<'_>> = Vec::new();
    match dump.get_stream::<MinidumpThreadList<'_>>() {
        Ok(list) => {
            for t in &list.threads {
                let ctx = t.context(&system, misc.as_ref());
                let Some(MinidumpRawContext::Amd64(raw)) = ctx.as_deref().map(|c| &c.raw) else {
                    missing.push(format!("the registers of thread {}", t.raw.thread_id));
                    continue;
                };
                threads.push(Thread {
                    tid: t.raw.thread_id,
                    signal: 0,
                    registers: registers(raw),
                });
                let stack = &t.raw.stack;
                let rva = stack.memory.rva as usize;
                let end = rva
                    .saturating_add(stack.memory.data_size as usize)
                    .min(data.len());
                if let Some(bytes) = data.get(rva..end)
                    && !bytes.is_empty()
                {
                    memory.push(Region {
                        start: stack.start_of_memory_range,
                        size: bytes.len() as u64,
                        flags: elfcore::READ | elfcore::WRITE,
                        bytes,
                    });
                }
            }
        }
        Err(e) => missing.push(format!("the thread list ({e})")),
    }
    // The thread that took the signal comes first, as in a core; its registers are the
    // exception's own context when it has one (Breakpad's thread list has the handler's).
    let mut signal = None;
    if let Some(e) = &exception {
        let tid = e.get_crashing_thread_id();
        if let Some(i) = threads.iter().position(|t| t.tid == tid) {
            let mut t = threads.remove(i);
            if let Some(ctx) = e.context(&system, misc.as_ref())
                && let MinidumpRawContext::Amd64(raw) = &ctx.raw
            {
                t.registers = registers(raw);
            }
            threads.insert(0, t);
        }
    }
    if let Some(e) = &exception
        && e.raw.exception_record.exception_code != DUMP_REQUESTED
    {
        let signo = e.raw.exception_record.exception_code;
        let address = e.raw.exception_record.exception_address;
        // The signals whose siginfo carries an address (SIGILL, SIGTRAP, SIGBUS, SIGFPE,
        // SIGSEGV).
        let has_address = matches!(signo, 4 | 5 | 7 | 8 | 11);
        signal = Some(SignalInfo {
            signo,
            code: e.raw.exception_record.exception_flags as i32,
            address: has_address.then_some(address),
            sender: None,
        });
        if let Some(first) = threads.first_mut() {
            first.signal = signo;
        }
    }
    if threads.is_empty() {
        missing.push("every thread's registers".into());
    }

    // The memory list read here rather than by the crate, so that a minidump cut short keeps
    // what it holds of a range and says what is gone.
    let mut short = (0usize, 0u64);
    match dump.get_raw_stream(MEMORY_LIST) {
        Ok(list) => {
            let count = elfcore::le32(list, 0) as usize;
            for d in list
                .get(4..)
                .unwrap_or_default()
                .chunks_exact(16)
                .take(count)
            {
                let start = elfcore::le64(d, 0);
                let size = u64::from(elfcore::le32(d, 8));
                let rva = elfcore::le32(d, 12) as usize;
                let bytes = data
                    .get(rva..rva.saturating_add(size as usize).min(data.len()))
                    .unwrap_or_default();
                if (bytes.len() as u64) < size {
                    short = (short.0 + 1, short.1 + size - bytes.len() as u64);
                }
                memory.push(Region {
                    start,
                    size,
                    flags: elfcore::READ,
                    bytes,
                });
            }
        }
        Err(_) if memory.is_empty() => missing.push("memory (the memory list)".into()),
        Err(_) => {}
    }
    if short.0 > 0 {
        missing.push(format!(
            "memory: the minidump is cut off at {} bytes; {} memory ranges are short, {} bytes \
             missing",
            data.len(),
            short.0,
            short.1
        ));
    }

    // Where memory was executable: the memory info list, else Breakpad's maps, else the
    // modules' ranges.
    let maps_text = dump.get_raw_stream(LINUX_MAPS).ok();
    let maps: Vec<(u64, u64, u32, u64, &str)> = maps_text
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(|t| t.lines().filter_map(maps_line).collect())
        .unwrap_or_default();
    let mut protections: Vec<(u64, u64, u32)> =
        match dump.get_stream::<MinidumpMemoryInfoList<'_>>() {
            Ok(list) => list
                .iter()
                .map(|i| {
                    (
                        i.raw.base_address,
                        i.raw.base_address.saturating_add(i.raw.region_size),
                        flags_of_protection(i.raw.protection),
                    )
                })
                .collect(),
            Err(_) => maps.iter().map(|&(s, e, f, _, _)| (s, e, f)).collect(),
        };

    let listed: Vec<(u64, u64, String, Option<BuildId>)> =
        match dump.get_stream::<MinidumpModuleList>() {
            Ok(list) => list
                .iter()
                .map(|m| {
                    let id = match &m.codeview_info {
                        Some(minidump::CodeView::Elf(cv)) => BuildId::new(cv.build_id.clone()).ok(),
                        _ => None,
                    };
                    (
                        m.raw.base_of_image,
                        m.raw
                            .base_of_image
                            .saturating_add(u64::from(m.raw.size_of_image)),
                        m.name.clone(),
                        id,
                    )
                })
                .collect(),
            Err(e) => {
                missing.push(format!("the module list ({e})"));
                Vec::new()
            }
        };
    if protections.is_empty() {
        protections = listed
            .iter()
            .map(|(s, e, _, _)| (*s, *e, elfcore::READ | elfcore::EXECUTE))
            .collect();
    }

    let mut mappings: Vec<Mapping> = maps
        .iter()
        .filter(|(_, _, _, _, path)| path.starts_with('/'))
        .map(|&(start, end, _, file_offset, path)| Mapping {
            start,
            end,
            file_offset,
            path: path.to_owned(),
        })
        .collect();
    if mappings.is_empty() {
        mappings = listed
            .iter()
            .map(|(start, end, path, _)| Mapping {
                start: *start,
                end: *end,
                file_offset: 0,
                path: path.clone(),
            })
            .collect();
    }

    let status = dump
        .get_raw_stream(LINUX_PROC_STATUS)
        .ok()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    };
    let pid = misc
        .as_ref()
        .and_then(|m| m.raw.process_id().copied())
        .or_else(|| field("Pid").and_then(|p| p.parse().ok()))
        .unwrap_or_else(|| threads.first().map_or(0, |t| t.tid));
    let args = dump.get_raw_stream(LINUX_CMD_LINE).ok().map(|b| {
        String::from_utf8_lossy(b)
            .trim_end_matches('\0')
            .replace('\0', " ")
    });
    let name = field("Name").or_else(|| {
        listed.first().and_then(|(_, _, path, _)| {
            path.rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
        })
    });

    let core = Core::assemble(
        data,
        threads,
        signal,
        pid,
        name,
        args,
        mappings,
        memory,
        protections,
        missing,
    );
    let mut modules = crate::modules::modules(&core);
    for (start, end, path, id) in listed {
        match modules
            .iter_mut()
            .find(|m| start >= m.start && start < m.end)
        {
            Some(m) => {
                if m.build_id.is_none() && id.is_some() {
                    m.build_id = id;
                    m.why_no_build_id = None;
                }
            }
            None => modules.push(LoadedModule {
                why_no_build_id: id
                    .is_none()
                    .then(|| "the minidump gives no build-id for it".into()),
                path,
                start,
                end,
                load_bias: start,
                build_id: id,
                segments: Vec::new(),
            }),
        }
    }
    modules.sort_by_key(|m| m.start);
    Ok((core, modules))
}
