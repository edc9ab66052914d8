//! The module table: which ELF objects are loaded, where, and under which build-id.
//!
//! The table comes from the dynamic loader's own list (`dl_iterate_phdr`) and the program
//! headers it maps, not from `/proc/self/maps`: it works without `/proc`, gives the load bias
//! directly, and lets the build-id be read from the mapped `PT_NOTE` segments instead of opening
//! files that may have been replaced on disk since the process started.

/// A loaded ELF module (executable, shared library or vDSO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Module {
    /// The path the loader knows; the executable's real path; `[vdso]` for the vDSO.
    pub(crate) path: String,
    /// The GNU build-id, if the module has one.
    pub(crate) build_id: Option<Vec<u8>>,
    /// Runtime address minus ELF virtual address (`dlpi_addr`).
    pub(crate) load_bias: u64,
    /// The `PT_LOAD` segments.
    pub(crate) segments: Vec<Segment>,
}

/// A `PT_LOAD` segment, in the record's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    /// `load_bias + p_vaddr`.
    pub(crate) start: u64,
    /// `p_memsz`.
    pub(crate) size: u64,
    /// `p_offset`.
    pub(crate) file_offset: u64,
    /// `p_vaddr`.
    pub(crate) vaddr: u64,
    /// `p_flags`; see [`Segment::permissions`].
    pub(crate) flags: u32,
}

const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

impl Segment {
    fn contains(&self, address: u64) -> bool {
        address >= self.start && address - self.start < self.size
    }

    /// `p_flags` as `r-x`, the way `/proc/self/maps` and the record format spell them.
    pub(crate) fn permissions(&self) -> String {
        [(PF_R, 'r'), (PF_W, 'w'), (PF_X, 'x')]
            .iter()
            .map(|&(bit, c)| if self.flags & bit != 0 { c } else { '-' })
            .collect()
    }
}

impl Module {
    /// Whether the runtime `address` lies in one of this module's segments.
    pub(crate) fn contains(&self, address: u64) -> bool {
        self.segments.iter().any(|s| s.contains(address))
    }
}

/// The modules loaded in this process, in the loader's order (the executable first).
pub(crate) fn loaded() -> Vec<Module> {
    sys::loaded()
}

/// A program header with every field widened to 64 bits, so the code below is the same for
/// `Elf32_Phdr` and `Elf64_Phdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProgramHeader {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    file_size: u64,
    memory_size: u64,
    align: u64,
}

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
/// Notes segments are a few hundred bytes; anything bigger is not worth scanning inside a
/// panic hook.
const MAX_NOTES_LEN: u64 = 64 * 1024;

/// The `PT_LOAD` segments of a module loaded at `load_bias`.
fn load_segments(load_bias: u64, headers: &[ProgramHeader]) -> Vec<Segment> {
    headers
        .iter()
        .filter(|ph| ph.kind == PT_LOAD)
        .map(|ph| Segment {
            start: load_bias.wrapping_add(ph.vaddr),
            size: ph.memory_size,
            file_offset: ph.offset,
            vaddr: ph.vaddr,
            flags: ph.flags,
        })
        .collect()
}

/// The virtual address range of a `PT_NOTE` segment's bytes, if they lie wholly inside the
/// file-backed part of one readable `PT_LOAD` segment: the only memory the hook can be sure is
/// mapped and readable. Hostile or odd headers (overflowing ranges, notes outside every load,
/// huge sizes) give `None`.
fn readable_notes_range(note: &ProgramHeader, headers: &[ProgramHeader]) -> Option<(u64, u64)> {
    let start = note.vaddr;
    let len = note.file_size;
    let end = start.checked_add(len)?;
    if note.kind != PT_NOTE || len == 0 || len > MAX_NOTES_LEN {
        return None;
    }
    let inside_a_load = headers.iter().any(|ph| {
        ph.kind == PT_LOAD
            && ph.flags & PF_R != 0
            && ph.vaddr <= start
            && ph
                .vaddr
                .checked_add(ph.file_size)
                .is_some_and(|load_end| end <= load_end)
    });
    inside_a_load.then_some((start, len))
}

#[cfg(target_os = "linux")]
mod sys {
    use std::ffi::{CStr, c_int, c_void};

    use super::{Module, PT_LOAD, PT_NOTE, ProgramHeader};
    use crate::notes;

    #[cfg(target_pointer_width = "64")]
    type ElfProgramHeader = libc::Elf64_Phdr;
    #[cfg(target_pointer_width = "32")]
    type ElfProgramHeader = libc::Elf32_Phdr;

    // On 64-bit targets the `u64::from`s below convert u64 to u64; they are there for 32-bit
    // ones, where the fields are u32.
    #[allow(clippy::useless_conversion)]
    fn widen(ph: &ElfProgramHeader) -> ProgramHeader {
        ProgramHeader {
            kind: ph.p_type,
            flags: ph.p_flags,
            offset: u64::from(ph.p_offset),
            vaddr: u64::from(ph.p_vaddr),
            file_size: u64::from(ph.p_filesz),
            memory_size: u64::from(ph.p_memsz),
            align: u64::from(ph.p_align),
        }
    }

    /// What the loader callback saw, before names are turned into paths. Resolving the
    /// executable's path reads `/proc`, which is better done after the loader lock is released.
    struct Seen {
        name: Vec<u8>,
        is_vdso: bool,
        module: Module,
    }

    pub(super) fn loaded() -> Vec<Module> {
        let mut seen: Vec<Seen> = Vec::with_capacity(64);
        // SAFETY: `visit` matches the callback type dl_iterate_phdr expects, and `data` is a
        // pointer to `seen`, which outlives the call and is only used by `visit` during it.
        // dl_iterate_phdr calls back synchronously on this thread.
        unsafe {
            libc::dl_iterate_phdr(Some(visit), (&raw mut seen).cast::<c_void>());
        }
        let mut executable_named = false;
        seen.into_iter()
            .map(|seen| {
                let Seen {
                    name,
                    is_vdso,
                    mut module,
                } = seen;
                module.path = if is_vdso {
                    "[vdso]".to_owned()
                } else if name.is_empty() && !executable_named {
                    // glibc and musl report the executable first, with an empty name.
                    executable_named = true;
                    std::env::current_exe()
                        .map(|path| path.to_string_lossy().into_owned())
                        .unwrap_or_default()
                } else {
                    String::from_utf8_lossy(&name).into_owned()
                };
                module
            })
            .collect()
    }

    /// Called by the loader once per loaded object.
    ///
    /// # Safety
    ///
    /// `info` must point to a valid `dl_phdr_info` whose program headers describe a mapped
    /// object, and `data` to the `Vec<Seen>` given to `dl_iterate_phdr`.
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the `&mut Vec<Seen>` passed by `loaded`, not aliased during the call.
        let seen = unsafe { &mut *data.cast::<Vec<Seen>>() };
        // SAFETY: the loader passes a valid pointer for the duration of the callback. Only the
        // first four fields are read, which every version of the struct has (the `_size`
        // argument exists so callers can check for later fields).
        let Some(info) = (unsafe { info.as_ref() }) else {
            return 0;
        };
        let elf_headers: &[ElfProgramHeader] = if info.dlpi_phdr.is_null() || info.dlpi_phnum == 0 {
            &[]
        } else {
            // SAFETY: the loader guarantees `dlpi_phdr` points to `dlpi_phnum` program
            // headers of the mapped object, which stay mapped while the callback runs.
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let headers: Vec<ProgramHeader> = elf_headers.iter().map(widen).collect();
        let name = if info.dlpi_name.is_null() {
            Vec::new()
        } else {
            // SAFETY: a non-null `dlpi_name` is a NUL-terminated string owned by the loader.
            unsafe { CStr::from_ptr(info.dlpi_name) }
                .to_bytes()
                .to_vec()
        };
        // A u32 on 32-bit targets.
        #[allow(clippy::useless_conversion)]
        let load_bias = u64::from(info.dlpi_addr);
        let build_id = headers
            .iter()
            .filter(|ph| ph.kind == PT_NOTE)
            .find_map(|ph| {
                let (vaddr, len) = super::readable_notes_range(ph, &headers)?;
                let address = usize::try_from(load_bias.wrapping_add(vaddr)).ok()?;
                let len = usize::try_from(len).ok()?;
                // SAFETY: the range lies inside a readable, file-backed PT_LOAD segment of this
                // module (`readable_notes_range` checked), which the loader keeps mapped while
                // the callback runs; the slice does not outlive the callback. Bytes have no
                // alignment requirement.
                let notes = unsafe { std::slice::from_raw_parts(address as *const u8, len) };
                notes::find_build_id(notes, ph.align).map(<[u8]>::to_vec)
            });
        let is_vdso = is_vdso(&name, load_bias, &headers);
        seen.push(Seen {
            name,
            is_vdso,
            module: Module {
                path: String::new(),
                build_id,
                load_bias,
                segments: super::load_segments(load_bias, &headers),
            },
        });
        0
    }

    /// Whether this object is the vDSO: by the names the kernel gives it, or, should a loader
    /// leave it unnamed, by its ELF header being the one the kernel announced in
    /// `AT_SYSINFO_EHDR`.
    fn is_vdso(name: &[u8], load_bias: u64, headers: &[ProgramHeader]) -> bool {
        if name.starts_with(b"linux-vdso") || name.starts_with(b"linux-gate") {
            return true;
        }
        // SAFETY: getauxval has no preconditions; it returns 0 for absent entries.
        let vdso_header = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };
        // An unsigned long: a u32 on 32-bit targets.
        #[allow(clippy::useless_conversion)]
        let vdso_header = u64::from(vdso_header);
        vdso_header != 0
            && headers.iter().any(|ph| {
                ph.kind == PT_LOAD
                    && ph.offset == 0
                    && load_bias.wrapping_add(ph.vaddr) == vdso_header
            })
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    /// Other systems get records without a module table rather than a build failure.
    pub(super) fn loaded() -> Vec<super::Module> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_permissions_like_proc_maps() {
        let segment = |flags| Segment {
            start: 0,
            size: 0,
            file_offset: 0,
            vaddr: 0,
            flags,
        };
        assert_eq!(segment(PF_R | PF_X).permissions(), "r-x");
        assert_eq!(segment(PF_R | PF_W).permissions(), "rw-");
        assert_eq!(segment(PF_R).permissions(), "r--");
        assert_eq!(segment(0).permissions(), "---");
        assert_eq!(segment(PF_R | PF_W | PF_X).permissions(), "rwx");
    }

    #[test]
    fn segments_are_half_open() {
        let module = Module {
            path: String::new(),
            build_id: None,
            load_bias: 0x1000,
            segments: vec![Segment {
                start: 0x2000,
                size: 0x100,
                file_offset: 0,
                vaddr: 0x1000,
                flags: PF_R,
            }],
        };
        assert!(!module.contains(0x1fff));
        assert!(module.contains(0x2000));
        assert!(module.contains(0x20ff));
        assert!(!module.contains(0x2100));
        assert!(!module.contains(u64::MAX));
    }

    fn header(kind: u32, flags: u32, vaddr: u64, file_size: u64) -> ProgramHeader {
        ProgramHeader {
            kind,
            flags,
            offset: vaddr,
            vaddr,
            file_size,
            memory_size: file_size,
            align: 4,
        }
    }

    #[track_caller]
    fn check_notes_range(
        note: ProgramHeader,
        loads: &[ProgramHeader],
        expected: Option<(u64, u64)>,
    ) {
        assert_eq!(readable_notes_range(&note, loads), expected);
    }

    #[test]
    fn reads_notes_only_inside_readable_loads() {
        let text = header(PT_LOAD, PF_R | PF_X, 0, 0x1000);
        check_notes_range(
            header(PT_NOTE, PF_R, 0x2fc, 0x44),
            &[text],
            Some((0x2fc, 0x44)),
        );
        // Ending exactly at the end of the load is fine; one byte past is not.
        check_notes_range(
            header(PT_NOTE, PF_R, 0xf00, 0x100),
            &[text],
            Some((0xf00, 0x100)),
        );
        check_notes_range(header(PT_NOTE, PF_R, 0xf00, 0x101), &[text], None);
        // Outside every load, or in one that is not readable.
        check_notes_range(header(PT_NOTE, PF_R, 0x5000, 0x10), &[text], None);
        check_notes_range(
            header(PT_NOTE, PF_R, 0x10, 0x10),
            &[header(PT_LOAD, PF_X, 0, 0x1000)],
            None,
        );
        // In the zero-filled (not file-backed) tail of a load.
        let bss = ProgramHeader {
            memory_size: 0x2000,
            ..header(PT_LOAD, PF_R | PF_W, 0x1000, 0x100)
        };
        check_notes_range(header(PT_NOTE, PF_R, 0x1800, 0x10), &[bss], None);
        // Hostile sizes.
        check_notes_range(header(PT_NOTE, PF_R, u64::MAX - 1, 0x10), &[text], None);
        check_notes_range(header(PT_NOTE, PF_R, 0, 0), &[text], None);
        let huge = header(PT_LOAD, PF_R, 0, u64::MAX);
        check_notes_range(header(PT_NOTE, PF_R, 0, MAX_NOTES_LEN + 1), &[huge], None);
        // Not a note.
        check_notes_range(header(PT_LOAD, PF_R, 0x2fc, 0x44), &[text], None);
    }

    #[test]
    fn relocates_load_segments_by_the_bias() {
        let headers = [
            header(PT_LOAD, PF_R, 0, 0x500),
            header(PT_NOTE, PF_R, 0x2fc, 0x44),
            header(PT_LOAD, PF_R | PF_X, 0x1000, 0x2000),
        ];
        let segments = load_segments(0x5555_0000_0000, &headers);
        let summary: Vec<_> = segments
            .iter()
            .map(|s| (s.start, s.size, s.vaddr, s.permissions()))
            .collect();
        assert_eq!(
            summary,
            [
                (0x5555_0000_0000, 0x500, 0, "r--".to_owned()),
                (0x5555_0000_1000, 0x2000, 0x1000, "r-x".to_owned()),
            ]
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn finds_this_executable_with_its_code_and_build_id() {
        let modules = loaded();
        let this = modules.first().unwrap_or_else(|| panic!("no modules"));
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(this.path, exe.to_string_lossy());
        let code = loaded as fn() -> Vec<Module> as usize as u64;
        assert!(this.contains(code), "{code:#x} not in {this:#x?}");
        let executable = this.segments.iter().find(|s| s.contains(code));
        assert_eq!(executable.map(Segment::permissions).as_deref(), Some("r-x"));
        // Cargo's linkers on Linux pass --build-id; the integration test compares its value
        // with readelf's.
        assert!(
            this.build_id.as_ref().is_some_and(|id| id.len() >= 8),
            "{this:x?}"
        );
        for module in &modules {
            for segment in &module.segments {
                assert_eq!(segment.start, module.load_bias.wrapping_add(segment.vaddr));
            }
        }
        assert!(!modules.iter().any(|m| m.path.starts_with("linux-vdso")));
    }
}
