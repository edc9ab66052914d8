//! ELF core files as Linux writes them: the threads (`NT_PRSTATUS`: registers, signal), the
//! signal's details (`NT_SIGINFO`: code, faulting address), the process (`NT_PRPSINFO`: name,
//! arguments), the mapped files (`NT_FILE`) and the memory the kernel kept (`PT_LOAD`
//! segments with file bytes). Pure: everything is read from the bytes given.
//!
//! A core cut short (a full disk, a killed writer) is read as far as it goes: what is missing
//! is listed in [`Core::missing`], never guessed.

/// The ELF constants used here (object 0.40 has them as newtypes; these are the raw values).
pub(crate) mod elf {
    pub const ET_REL: u16 = 1;
    pub const ET_EXEC: u16 = 2;
    pub const ET_DYN: u16 = 3;
    pub const ET_CORE: u16 = 4;
    pub const EM_386: u16 = 3;
    pub const EM_PPC64: u16 = 21;
    pub const EM_S390: u16 = 22;
    pub const EM_ARM: u16 = 40;
    pub const EM_X86_64: u16 = 62;
    pub const EM_AARCH64: u16 = 183;
    pub const EM_RISCV: u16 = 243;
    pub const PT_LOAD: u32 = 1;
    pub const PT_NOTE: u32 = 4;
    pub const PF_X: u32 = 1;
    pub const PF_W: u32 = 2;
    pub const PF_R: u32 = 4;
    pub const NT_GNU_BUILD_ID: u32 = 3;
    pub const ELFCLASS32: u8 = 1;
    /// `e_phnum` when the real count is in section header 0's `sh_info`.
    pub const PN_XNUM: u16 = 0xffff;
}

/// Why a file cannot be read as a core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// Not an ELF file at all.
    #[error("not an ELF file")]
    NotElf,
    /// An ELF file, but not a core (an executable, a library, a debug file).
    #[error("an ELF {0}, not a core file")]
    NotCore(&'static str),
    /// A core of a machine faultline does not unwind.
    #[error("a core of {0}: faultline reads x86_64 cores")]
    Architecture(String),
    /// A 32-bit core.
    #[error("a 32-bit core: faultline reads 64-bit (x86_64) cores")]
    ThirtyTwoBit,
    /// The headers themselves are cut off or inconsistent.
    #[error("{0}")]
    Malformed(String),
}

/// `user_regs_struct` of x86_64, in the kernel's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Registers(pub [u64; 27]);

impl Registers {
    /// The names, in the kernel's order.
    pub const NAMES: [&'static str; 27] = [
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
        "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds",
        "es", "fs", "gs",
    ];

    /// The instruction pointer.
    pub fn ip(&self) -> u64 {
        self.0[16]
    }

    /// The stack pointer.
    pub fn sp(&self) -> u64 {
        self.0[19]
    }

    /// The frame pointer.
    pub fn bp(&self) -> u64 {
        self.0[4]
    }

    /// A register by name.
    pub fn get(&self, name: &str) -> Option<u64> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| self.0[i])
    }
}

/// One thread of the process, as its `NT_PRSTATUS` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    /// Its id (`pr_pid`: the thread's, not the process's).
    pub tid: u32,
    /// The signal it was stopped by (`pr_cursig`).
    pub signal: u32,
    /// Its registers.
    pub registers: Registers,
}

/// What `NT_SIGINFO` says of the signal that killed the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalInfo {
    /// The signal number.
    pub signo: u32,
    /// `si_code`: how it was raised (`SEGV_MAPERR`, `SI_TKILL`, …).
    pub code: i32,
    /// The faulting address, for the signals that have one (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
    /// SIGTRAP raised by the kernel).
    pub address: Option<u64>,
    /// The sender's pid, for a signal sent by a process (`kill`, `raise`, `abort`).
    pub sender: Option<u32>,
}

/// A file mapped into the process (`NT_FILE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Offset in the file of `start`.
    pub file_offset: u64,
    /// The file's path as the process saw it.
    pub path: String,
}

/// Memory the core holds: a `PT_LOAD` segment's bytes in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Memory {
    vaddr: u64,
    /// Bytes present in the file (less than the segment's when the core is cut short).
    present: u64,
    /// Where they are in the file.
    offset: u64,
    /// The segment's size in memory.
    memsz: u64,
    flags: u32,
}

/// A core file, read.
#[derive(Debug, Clone)]
pub struct Core<'data> {
    data: &'data [u8],
    /// Every thread; the first is the one that took the signal (the kernel writes it first).
    pub threads: Vec<Thread>,
    /// The fatal signal's details, if the core has them.
    pub signal: Option<SignalInfo>,
    /// The process id (`NT_PRPSINFO`), else the first thread's.
    pub pid: u32,
    /// The program's name (`pr_fname`, at most 15 bytes).
    pub name: Option<String>,
    /// Its command line as `NT_PRPSINFO` keeps it (at most 80 bytes).
    pub args: Option<String>,
    /// The mapped files, in address order.
    pub mappings: Vec<Mapping>,
    memory: Vec<Memory>,
    /// Where the process's memory was executable, when that is known apart from `memory`
    /// (a minidump's memory info); empty for an ELF core, whose segments say it.
    protections: Vec<(u64, u64, u32)>,
    /// What the core should hold but does not (cut short, a note missing).
    pub missing: Vec<String>,
}

/// A range of the process's memory: its addresses and permissions (`PF_R`, `PF_W`, `PF_X`),
/// and the bytes the file holds of it (from its start; fewer than its size or none when the
/// rest was not dumped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region<'data> {
    /// Its first address.
    pub start: u64,
    /// Its size in the process.
    pub size: u64,
    /// `PF_R | PF_W | PF_X` as they apply.
    pub flags: u32,
    /// What the file holds of it.
    pub bytes: &'data [u8],
}

/// A region's readable permission (`PF_R`).
pub const READ: u32 = elf::PF_R;
/// A region's writable permission (`PF_W`).
pub const WRITE: u32 = elf::PF_W;
/// A region's executable permission (`PF_X`).
pub const EXECUTE: u32 = elf::PF_X;

const NT_PRSTATUS: u32 = 1;
const NT_PRPSINFO: u32 = 3;
const NT_SIGINFO: u32 = 0x5349_4749;
const NT_FILE: u32 = 0x4649_4c45;
const PRSTATUS_LEN: usize = 336;
const PRSTATUS_REGS: usize = 112;

/// Little-endian fields at `at`, `None` past the end (shared by the core's readers).
pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The same fields, 0 past the end: for headers read on a best-effort basis.
pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16_at(b, at).unwrap_or(0)
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32_at(b, at).unwrap_or(0)
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    u64_at(b, at).unwrap_or(0)
}

/// A NUL-terminated string in a fixed field.
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Whether `data` starts like an ELF core (for input detection).
pub fn looks_like_core(data: &[u8]) -> bool {
    data.len() >= 18 && data.starts_with(b"\x7fELF") && u16_at(data, 16) == Some(elf::ET_CORE)
}

/// The name of an ELF machine, for messages.
fn machine_name(machine: u16) -> String {
    match machine {
        elf::EM_AARCH64 => "aarch64".into(),
        elf::EM_ARM => "32-bit ARM".into(),
        elf::EM_386 => "i386".into(),
        elf::EM_RISCV => "RISC-V".into(),
        elf::EM_PPC64 => "ppc64".into(),
        elf::EM_S390 => "s390x".into(),
        other => format!("ELF machine {other}"),
    }
}

impl<'data> Core<'data> {
    /// Reads the core in `data`.
    pub fn parse(data: &'data [u8]) -> Result<Self, CoreError> {
        if !data.starts_with(b"\x7fELF") {
            return Err(CoreError::NotElf);
        }
        if data.get(4) == Some(&elf::ELFCLASS32) {
            return Err(CoreError::ThirtyTwoBit);
        }
        if data.len() < 64 {
            return Err(CoreError::Malformed(format!(
                "its ELF header is cut off ({} bytes)",
                data.len()
            )));
        }
        if data[5] != 1 {
            return Err(CoreError::Architecture("a big-endian machine".into()));
        }
        let e_type = u16_at(data, 16).unwrap_or(0);
        match e_type {
            elf::ET_CORE => {}
            elf::ET_EXEC => return Err(CoreError::NotCore("executable")),
            elf::ET_DYN => return Err(CoreError::NotCore("shared object or PIE executable")),
            elf::ET_REL => return Err(CoreError::NotCore("object file")),
            _ => return Err(CoreError::NotCore("file of an unknown type")),
        }
        let machine = u16_at(data, 18).unwrap_or(0);
        if machine != elf::EM_X86_64 {
            return Err(CoreError::Architecture(machine_name(machine)));
        }
        let phoff = u64_at(data, 32).unwrap_or(0);
        let phentsize = usize::from(u16_at(data, 54).unwrap_or(0));
        let mut phnum = u64::from(u16_at(data, 56).unwrap_or(0));
        if phnum == u64::from(elf::PN_XNUM) {
            // More segments than fit in e_phnum: section header 0 holds the count.
            let shoff = u64_at(data, 40).unwrap_or(0) as usize;
            phnum = u64::from(u32_at(data, shoff.saturating_add(44)).unwrap_or(0));
        }
        if phentsize < 56 {
            return Err(CoreError::Malformed(format!(
                "its program headers are {phentsize} bytes each, not 56"
            )));
        }
        let table_len = phnum.saturating_mul(phentsize as u64);
        let Some(table) = data.get(phoff as usize..(phoff.saturating_add(table_len)) as usize)
        else {
            return Err(CoreError::Malformed(format!(
                "its {phnum} program headers at offset {phoff:#x} are cut off (the file has {} \
                 bytes)",
                data.len()
            )));
        };
        let mut core = Core {
            data,
            threads: Vec::new(),
            signal: None,
            pid: 0,
            name: None,
            args: None,
            mappings: Vec::new(),
            memory: Vec::new(),
            protections: Vec::new(),
            missing: Vec::new(),
        };
        let mut saw_notes = false;
        // Memory segments the file is too short for, and the bytes missing.
        let mut short = (0u64, 0u64);
        let segments = table.len() / phentsize;
        for ph in table.chunks_exact(phentsize) {
            let p_type = u32_at(ph, 0).unwrap_or(0);
            let offset = u64_at(ph, 8).unwrap_or(0);
            let vaddr = u64_at(ph, 16).unwrap_or(0);
            let filesz = u64_at(ph, 32).unwrap_or(0);
            match p_type {
                elf::PT_NOTE => {
                    saw_notes = true;
                    core.read_notes(offset, filesz);
                }
                elf::PT_LOAD => {
                    let have = (data.len() as u64).saturating_sub(offset).min(filesz);
                    if have < filesz {
                        short.0 += 1;
                        short.1 = short.1.saturating_add(filesz - have);
                    }
                    core.memory.push(Memory {
                        vaddr,
                        present: have,
                        offset,
                        memsz: u64_at(ph, 40).unwrap_or(0),
                        flags: u32_at(ph, 4).unwrap_or(0),
                    });
                }
                _ => {}
            }
        }
        if short.0 > 0 {
            core.missing.push(format!(
                "memory: the core is cut off at {} bytes; {} of its {segments} segments are \
                 short, {} bytes missing",
                data.len(),
                short.0,
                short.1
            ));
        }
        if !saw_notes {
            core.missing
                .push("the notes (threads, registers, signal, mapped files)".into());
        }
        if core.threads.is_empty() {
            core.missing
                .push("every thread's registers (NT_PRSTATUS)".into());
        }
        if core.pid == 0 {
            core.pid = core.threads.first().map_or(0, |t| t.tid);
        }
        core.memory.sort_by_key(|m| m.vaddr);
        core.mappings.sort_by_key(|m| m.start);
        Ok(core)
    }

    fn read_notes(&mut self, offset: u64, size: u64) {
        let (offset, size) = (offset as usize, size as usize);
        let Some(bytes) = self.data.get(offset..offset.saturating_add(size)) else {
            self.missing.push(format!(
                "notes at offset {offset:#x}: the core is cut off before their end"
            ));
            // Read what is there.
            let Some(part) = self.data.get(offset..) else {
                return;
            };
            self.read_note_bytes(part, true);
            return;
        };
        self.read_note_bytes(bytes, false);
    }

    /// Walks `n_namesz, n_descsz, n_type, name, desc` records, 4-byte aligned (core notes are).
    fn read_note_bytes(&mut self, mut bytes: &[u8], cut: bool) {
        while bytes.len() >= 12 {
            let (Some(namesz), Some(descsz), Some(kind)) =
                (u32_at(bytes, 0), u32_at(bytes, 4), u32_at(bytes, 8))
            else {
                break;
            };
            let name_end = 12 + (namesz as usize).div_ceil(4) * 4;
            let desc_end = name_end.saturating_add((descsz as usize).div_ceil(4) * 4);
            let name = bytes.get(12..12 + namesz as usize).unwrap_or_default();
            let Some(desc) = bytes.get(name_end..name_end + descsz as usize) else {
                if !cut {
                    self.missing
                        .push(format!("a note of type {kind:#x} runs past the notes' end"));
                }
                break;
            };
            let name = name.strip_suffix(b"\0").unwrap_or(name);
            if name == b"CORE" {
                self.read_note(kind, desc);
            }
            bytes = bytes.get(desc_end..).unwrap_or_default();
        }
    }

    fn read_note(&mut self, kind: u32, desc: &[u8]) {
        match kind {
            NT_PRSTATUS if desc.len() >= PRSTATUS_LEN - 8 => {
                let mut regs = [0u64; 27];
                for (i, r) in regs.iter_mut().enumerate() {
                    *r = u64_at(desc, PRSTATUS_REGS + 8 * i).unwrap_or(0);
                }
                self.threads.push(Thread {
                    tid: u32_at(desc, 32).unwrap_or(0),
                    signal: u32::from(u16_at(desc, 12).unwrap_or(0)),
                    registers: Registers(regs),
                });
            }
            NT_PRSTATUS => self.missing.push(format!(
                "a thread's NT_PRSTATUS is {} bytes, not {PRSTATUS_LEN}",
                desc.len()
            )),
            NT_PRPSINFO if desc.len() >= 136 => {
                self.pid = u32_at(desc, 24).unwrap_or(0);
                self.name = Some(c_string(&desc[40..56])).filter(|s| !s.is_empty());
                self.args =
                    Some(c_string(&desc[56..136]).trim_end().to_owned()).filter(|s| !s.is_empty());
            }
            NT_SIGINFO if desc.len() >= 24 => {
                let signo = u32_at(desc, 0).unwrap_or(0);
                let code = u32_at(desc, 8).unwrap_or(0) as i32;
                // Kernel-raised faults carry the address; signals sent by a process (si_code
                // <= 0) carry the sender instead.
                let faulting = matches!(signo, 4 | 5 | 7 | 8 | 11) && code > 0;
                self.signal = Some(SignalInfo {
                    signo,
                    code,
                    address: faulting.then(|| u64_at(desc, 16).unwrap_or(0)),
                    sender: (code <= 0).then(|| u32_at(desc, 16).unwrap_or(0)),
                });
            }
            NT_FILE => self.read_files(desc),
            _ => {}
        }
    }

    fn read_files(&mut self, desc: &[u8]) {
        let (Some(count), Some(page)) = (u64_at(desc, 0), u64_at(desc, 8)) else {
            self.missing
                .push("the mapped files (NT_FILE) are cut off".into());
            return;
        };
        let count = count.min(1 << 20) as usize;
        let names_at = 16 + 24 * count;
        let Some(mut names) = desc.get(names_at..) else {
            self.missing
                .push("the mapped files (NT_FILE) are cut off".into());
            return;
        };
        for i in 0..count {
            let at = 16 + 24 * i;
            let (Some(start), Some(end), Some(pages)) = (
                u64_at(desc, at),
                u64_at(desc, at + 8),
                u64_at(desc, at + 16),
            ) else {
                break;
            };
            let Some(nul) = names.iter().position(|&c| c == 0) else {
                self.missing.push(format!(
                    "the mapped files (NT_FILE) are cut off after {i} of {count} names"
                ));
                break;
            };
            let path = String::from_utf8_lossy(&names[..nul]).into_owned();
            names = &names[nul + 1..];
            self.mappings.push(Mapping {
                start,
                end,
                file_offset: pages.saturating_mul(page),
                path,
            });
        }
    }

    /// The bytes of memory at `address`, as many as the core holds up to `len` (within one
    /// segment); `None` when the core holds none there.
    pub fn read(&self, address: u64, len: usize) -> Option<&'data [u8]> {
        let at = self.memory.partition_point(|m| m.vaddr <= address);
        let m = self.memory.get(at.checked_sub(1)?)?;
        let within = address - m.vaddr;
        if within >= m.present {
            return None;
        }
        let start = (m.offset + within) as usize;
        let n = (m.present - within).min(len as u64) as usize;
        self.data.get(start..start + n)
    }

    /// The 8-byte word at `address`.
    pub fn read_u64(&self, address: u64) -> Option<u64> {
        let b = self.read(address, 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// Whether `address` is in an executable mapping of the process (kept or not).
    pub fn executable(&self, address: u64) -> bool {
        if !self.protections.is_empty() {
            let at = self.protections.partition_point(|p| p.0 <= address);
            return at
                .checked_sub(1)
                .and_then(|i| self.protections.get(i))
                .is_some_and(|&(start, end, flags)| {
                    address >= start && address < end && flags & elf::PF_X != 0
                });
        }
        let at = self.memory.partition_point(|m| m.vaddr <= address);
        at.checked_sub(1)
            .and_then(|i| self.memory.get(i))
            .is_some_and(|m| address - m.vaddr < m.memsz && m.flags & elf::PF_X != 0)
    }
}

impl<'data> Core<'data> {
    /// Every range of the process's memory the file describes, in address order, with the
    /// bytes it holds of each.
    pub fn regions(&self) -> impl Iterator<Item = Region<'data>> + '_ {
        self.memory.iter().map(|m| Region {
            start: m.vaddr,
            size: m.memsz,
            flags: m.flags,
            bytes: self
                .data
                .get(m.offset as usize..(m.offset.saturating_add(m.present)) as usize)
                .unwrap_or_default(),
        })
    }

    /// A process image made of parts read elsewhere (a minidump): `memory`'s byte slices
    /// must lie within `data`; `protections` are `(start, end, flags)` ranges saying where
    /// memory was executable (empty: `memory`'s own flags say it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        data: &'data [u8],
        threads: Vec<Thread>,
        signal: Option<SignalInfo>,
        pid: u32,
        name: Option<String>,
        args: Option<String>,
        mut mappings: Vec<Mapping>,
        memory: Vec<Region<'data>>,
        mut protections: Vec<(u64, u64, u32)>,
        missing: Vec<String>,
    ) -> Self {
        let base = data.as_ptr() as usize;
        let mut memory: Vec<Memory> = memory
            .into_iter()
            .filter_map(|r| {
                let offset = (r.bytes.as_ptr() as usize).checked_sub(base)?;
                (offset.checked_add(r.bytes.len())? <= data.len()).then_some(Memory {
                    vaddr: r.start,
                    present: r.bytes.len() as u64,
                    offset: offset as u64,
                    memsz: r.size.max(r.bytes.len() as u64),
                    flags: r.flags,
                })
            })
            .collect();
        memory.sort_by_key(|m| m.vaddr);
        // Overlapping ranges (a stack listed twice) would hide one another from the lookup:
        // the first one of them to start is kept.
        let mut kept: Vec<Memory> = Vec::with_capacity(memory.len());
        for m in memory {
            match kept.last() {
                Some(last) if m.vaddr < last.vaddr.saturating_add(last.memsz) => {}
                _ => kept.push(m),
            }
        }
        protections.sort_unstable();
        mappings.sort_by_key(|m| m.start);
        Self {
            data,
            threads,
            signal,
            pid,
            name,
            args,
            mappings,
            memory: kept,
            protections,
            missing,
        }
    }
}
