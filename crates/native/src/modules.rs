//! The modules of a crashed process: its mapped ELF files, each with its load bias, segments
//! and GNU build-id read from the ELF headers the kernel keeps in the core (the first page of
//! every mapped ELF file, by the default `coredump_filter`).

use faultline_record::{Addr, BuildId, Segment};

use crate::elfcore::{Core, Mapping, elf, le16 as u16_at, le32 as u32_at, le64 as u64_at};

/// A mapped ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedModule {
    /// Its path as the process saw it.
    pub path: String,
    /// The lowest and one past the highest address of its mappings.
    pub start: u64,
    /// One past its last mapped address.
    pub end: u64,
    /// Runtime address minus the file's virtual address.
    pub load_bias: u64,
    /// Its GNU build-id; `None` when the core does not hold its headers or it has none.
    pub build_id: Option<BuildId>,
    /// Its `PT_LOAD` segments, as a crash record keeps them.
    pub segments: Vec<Segment>,
    /// Why its build-id is unknown, if it is.
    pub why_no_build_id: Option<String>,
}

/// The modules of `core`, in address order: every mapped file whose first page the core holds
/// as an ELF header; a mapped file whose header is not in the core is listed too, its build-id
/// unknown and its bias assumed from its mapping (virtual address = file offset).
pub fn modules(core: &Core<'_>) -> Vec<LoadedModule> {
    let mut by_path: Vec<(&str, Vec<&Mapping>)> = Vec::new();
    for m in &core.mappings {
        match by_path.iter_mut().find(|(p, _)| *p == m.path) {
            Some((_, list)) => list.push(m),
            None => by_path.push((&m.path, vec![m])),
        }
    }
    let mut out = Vec::new();
    for (path, maps) in by_path {
        let start = maps.iter().map(|m| m.start).min().unwrap_or(0);
        let end = maps.iter().map(|m| m.end).max().unwrap_or(0);
        let Some(first) = maps.iter().find(|m| m.file_offset == 0) else {
            continue;
        };
        let header = core.read(first.start, 64);
        let module = match header {
            Some(h) if h.len() == 64 && h.starts_with(b"\x7fELF") => from_header(
                &|at, len| core.read(at, len),
                path,
                first.start,
                h,
                start,
                end,
            ),
            // Not an ELF file (a font, a locale archive), or its header not kept: an ELF's
            // text is still worth naming.
            _ if maps.iter().any(|m| core.executable(m.start)) => LoadedModule {
                path: path.to_owned(),
                start,
                end,
                load_bias: first.start,
                build_id: None,
                segments: Vec::new(),
                why_no_build_id: Some("the core does not hold its ELF header".into()),
            },
            _ => continue,
        };
        out.push(module);
    }
    out.sort_by_key(|m| m.start);
    out
}

impl LoadedModule {
    /// Fixes the load bias and segments of a module whose ELF header the dump did not hold
    /// (a minidump lists a module by its base address alone) from its file, once found.
    pub fn rebase_on(&mut self, file: &[u8]) {
        if !self.segments.is_empty() || !file.starts_with(b"\x7fELF") || file.len() < 64 {
            return;
        }
        let base = self.start;
        let read = |at: u64, len: usize| {
            let off = usize::try_from(at.checked_sub(base)?).ok()?;
            file.get(off..off.checked_add(len)?.min(file.len()))
        };
        let found = from_header(&read, &self.path, base, &file[..64], self.start, self.end);
        self.load_bias = found.load_bias;
        self.segments = found.segments;
        if self.build_id.is_none() {
            self.build_id = found.build_id;
        }
    }
}

type Read<'r, 'data> = &'r dyn Fn(u64, usize) -> Option<&'data [u8]>;

fn from_header(
    read: Read<'_, '_>,
    path: &str,
    base: u64,
    header: &[u8],
    start: u64,
    end: u64,
) -> LoadedModule {
    let mut module = LoadedModule {
        path: path.to_owned(),
        start,
        end,
        load_bias: base,
        build_id: None,
        segments: Vec::new(),
        why_no_build_id: None,
    };
    let phoff = u64_at(header, 32);
    let phentsize = u64::from(u16_at(header, 54));
    let phnum = u64::from(u16_at(header, 56));
    if phentsize < 56 || phnum == 0 {
        module.why_no_build_id = Some("its ELF header has no program headers".into());
        return module;
    }
    let Some(table) = read(base.wrapping_add(phoff), (phentsize * phnum) as usize) else {
        module.why_no_build_id = Some("the core does not hold its program headers".into());
        return module;
    };
    let headers: Vec<&[u8]> = table.chunks_exact(phentsize as usize).collect();
    // The segment that maps offset 0 fixes the bias.
    if let Some(first) = headers
        .iter()
        .find(|h| u32_at(h, 0) == elf::PT_LOAD && u64_at(h, 8) == 0)
    {
        let vaddr = u64_at(first, 16);
        let align = u64_at(first, 48).max(1);
        module.load_bias = base.wrapping_sub(vaddr & !(align - 1));
    }
    for h in &headers {
        if u32_at(h, 0) == elf::PT_LOAD {
            let flags = u32_at(h, 4);
            let f = |bit: u32, c: char| if flags & bit != 0 { c } else { '-' };
            module.segments.push(Segment {
                start: Addr(module.load_bias.wrapping_add(u64_at(h, 16))),
                size: u64_at(h, 40),
                file_offset: u64_at(h, 8),
                vaddr: Addr(u64_at(h, 16)),
                flags: [f(elf::PF_R, 'r'), f(elf::PF_W, 'w'), f(elf::PF_X, 'x')]
                    .into_iter()
                    .collect(),
            });
        }
    }
    for h in &headers {
        if u32_at(h, 0) != elf::PT_NOTE {
            continue;
        }
        let at = module.load_bias.wrapping_add(u64_at(h, 16));
        let size = u64_at(h, 32);
        // Read on past the segment's end, within the page the core keeps: Go's linker puts
        // `.note.gnu.build-id` right after `.note.go.buildid` but its PT_NOTE covers only the
        // latter.
        let page_end = (at | 0xfff).saturating_add(1);
        let len = size.max(page_end.saturating_sub(at)) as usize;
        let Some(notes) = read(at, len) else {
            continue;
        };
        if let Some(id) = build_id_note(notes).and_then(|id| BuildId::new(id).ok()) {
            module.build_id = Some(id);
            return module;
        }
    }
    module.why_no_build_id = Some(if module.segments.is_empty() {
        "its ELF header has no loadable segments".into()
    } else {
        "no GNU build-id note in the part of it the core holds".into()
    });
    module
}

/// The `NT_GNU_BUILD_ID` note's descriptor among `notes`.
fn build_id_note(mut notes: &[u8]) -> Option<Vec<u8>> {
    while notes.len() >= 12 {
        let namesz = u32_at(notes, 0) as usize;
        let descsz = u32_at(notes, 4) as usize;
        let kind = u32_at(notes, 8);
        let name_end = 12 + namesz.div_ceil(4) * 4;
        let desc = notes.get(name_end..name_end + descsz)?;
        let name = notes.get(12..12 + namesz)?;
        if name == b"GNU\0" && kind == elf::NT_GNU_BUILD_ID && !desc.is_empty() {
            return Some(desc.to_vec());
        }
        notes = notes.get(name_end + descsz.div_ceil(4) * 4..)?;
    }
    None
}
