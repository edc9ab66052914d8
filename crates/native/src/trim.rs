//! A core read once from a stream and kept small: the kernel pipes a core of any size into the
//! handler (`core_pattern = |faultline core-handler …`), and what is kept is a valid ELF core of
//! kilobytes — every note (threads, registers, signal, mapped files), the first page of each
//! mapped file (its ELF header and build-id) and a window of each thread's stack — which
//! `faultline analyze` reads like the original. (gdb opens it too, but finds no shared
//! libraries: it lists them from the dynamic loader's memory, which is not kept.)
//!
//! The input is read front to back exactly once, in bounded buffers; the memory that is not
//! kept is read and dropped.

use std::io::Read;

use crate::elfcore::{Core, CoreError, elf, le16 as u16_at, le32 as u32_at, le64 as u64_at};

/// What to keep.
#[derive(Debug, Clone, Copy)]
pub struct TrimOptions {
    /// Bytes of the crashing thread's stack kept, from its stack pointer up (the frames
    /// above it).
    pub stack_window: u64,
    /// The same for every other thread (parked in a wait, most need far less).
    pub other_stack_window: u64,
    /// Bytes kept below each stack pointer (the red zone, a signal frame being built).
    pub below_sp: u64,
    /// The most notes kept, in bytes (a process of many thousands of threads has megabytes).
    pub max_notes: u64,
}

impl Default for TrimOptions {
    fn default() -> Self {
        Self {
            stack_window: 64 * 1024,
            other_stack_window: 16 * 1024,
            below_sp: 512,
            max_notes: 64 * 1024 * 1024,
        }
    }
}

/// A trimmed core and what it took.
#[derive(Debug, Clone)]
pub struct Trimmed {
    /// The trimmed core: an ELF core file.
    pub bytes: Vec<u8>,
    /// Bytes read from the input (the original core's size, unless it was cut short).
    pub read: u64,
    /// Bytes of memory kept.
    pub kept: u64,
    /// Threads in it.
    pub threads: usize,
    /// What the input should have held and did not (cut short).
    pub missing: Vec<String>,
}

/// One `PT_LOAD` of the input.
#[derive(Debug, Clone, Copy)]
struct Load {
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    flags: u32,
}

/// Reads from `input`, counting.
struct Stream<R> {
    input: R,
    pos: u64,
    eof: bool,
}

impl<R: Read> Stream<R> {
    /// Up to `n` bytes appended to `out`; fewer only at the end of the input.
    fn take(&mut self, n: u64, out: &mut Vec<u8>) -> Result<u64, CoreError> {
        let got = (&mut self.input)
            .take(n)
            .read_to_end(out)
            .map_err(|e| CoreError::Malformed(format!("reading the core: {e}")))?
            as u64;
        self.pos += got;
        if got < n {
            self.eof = true;
        }
        Ok(got)
    }

    /// Reads and drops bytes up to offset `to`.
    fn skip_to(&mut self, to: u64) -> Result<(), CoreError> {
        let mut left = to.saturating_sub(self.pos);
        let mut scratch = vec![0u8; 1 << 20];
        while left > 0 && !self.eof {
            let want = left.min(scratch.len() as u64) as usize;
            let got = self
                .input
                .read(&mut scratch[..want])
                .map_err(|e| CoreError::Malformed(format!("reading the core: {e}")))?;
            if got == 0 {
                self.eof = true;
                break;
            }
            self.pos += got as u64;
            left -= got as u64;
        }
        Ok(())
    }
}

/// Reads the core in `input` once and returns the trimmed core.
pub fn trim(input: impl Read, options: &TrimOptions) -> Result<Trimmed, CoreError> {
    let mut stream = Stream {
        input,
        pos: 0,
        eof: false,
    };
    let mut head = Vec::with_capacity(4096);
    stream.take(64, &mut head)?;
    // The header's checks (ELF, 64-bit, little-endian, a core, x86_64) are the reader's.
    if let Err(e) = Core::parse(&head)
        && !matches!(e, CoreError::Malformed(_))
    {
        return Err(e);
    }
    if head.len() < 64 {
        return Err(CoreError::Malformed(format!(
            "its ELF header is cut off ({} bytes)",
            head.len()
        )));
    }
    let phoff = u64_at(&head, 32);
    let phentsize = u64::from(u16_at(&head, 54));
    let phnum = u16_at(&head, 56);
    if phnum == elf::PN_XNUM {
        return Err(CoreError::Malformed(
            "more than 65534 segments (their count is at the file's end, which a stream \
             reaches last)"
                .into(),
        ));
    }
    if phentsize < 56 || phoff < 64 {
        return Err(CoreError::Malformed(format!(
            "its program headers (at {phoff:#x}, {phentsize} bytes each) are not where a \
             core has them"
        )));
    }
    stream.skip_to(phoff)?;
    let mut table = Vec::new();
    stream.take(phentsize * u64::from(phnum), &mut table)?;
    if (table.len() as u64) < phentsize * u64::from(phnum) {
        return Err(CoreError::Malformed(
            "its program headers are cut off".into(),
        ));
    }
    let mut notes: Vec<(u64, u64)> = Vec::new();
    let mut loads: Vec<Load> = Vec::new();
    for ph in table.chunks_exact(phentsize as usize) {
        match u32_at(ph, 0) {
            elf::PT_NOTE => notes.push((u64_at(ph, 8), u64_at(ph, 32))),
            elf::PT_LOAD => loads.push(Load {
                offset: u64_at(ph, 8),
                vaddr: u64_at(ph, 16),
                filesz: u64_at(ph, 32),
                memsz: u64_at(ph, 40),
                flags: u32_at(ph, 4),
            }),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    // The notes come first in a Linux core: read them whole (within the cap).
    notes.sort_unstable();
    let mut note_bytes = Vec::new();
    for &(offset, size) in &notes {
        if offset < stream.pos {
            missing.push(format!(
                "notes at {offset:#x}, before the program headers' end"
            ));
            continue;
        }
        stream.skip_to(offset)?;
        let room = options.max_notes.saturating_sub(note_bytes.len() as u64);
        let want = size.min(room);
        let got = stream.take(want, &mut note_bytes)?;
        if got < size {
            missing.push(if want < size {
                format!("notes past the first {} bytes", options.max_notes)
            } else {
                "the end of the notes: the core is cut off".into()
            });
        }
    }

    // Threads and mapped files, read from the notes alone.
    let mut synthetic = head[..64].to_vec();
    synthetic[32..40].copy_from_slice(&64u64.to_le_bytes());
    synthetic[54..56].copy_from_slice(&56u16.to_le_bytes());
    synthetic[56..58].copy_from_slice(&1u16.to_le_bytes());
    synthetic.extend(program_header(
        elf::PT_NOTE,
        0,
        120,
        0,
        note_bytes.len() as u64,
        0,
    ));
    synthetic.extend_from_slice(&note_bytes);
    let core = Core::parse(&synthetic)?;

    // The memory to keep: each thread's stack window, each mapped file's first page.
    let mut windows: Vec<(u64, u64)> = core
        .threads
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let sp = t.registers.sp();
            let above = if i == 0 {
                options.stack_window
            } else {
                options.other_stack_window
            };
            (
                sp.saturating_sub(options.below_sp),
                sp.saturating_add(above),
            )
        })
        .chain(
            core.mappings
                .iter()
                .filter(|m| m.file_offset == 0)
                .map(|m| (m.start, m.start.saturating_add(4096).min(m.end))),
        )
        .collect();
    windows.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (start, end) in windows {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }

    // Stream the segments in file order, keeping what falls in a window.
    loads.sort_by_key(|l| l.offset);
    let mut pieces: Vec<(Load, Option<Vec<u8>>)> = Vec::new();
    let mut kept = 0u64;
    let mut cut = false;
    for load in &loads {
        let mut parts = split(load, &merged);
        if load.filesz > 0 && !cut {
            if load.offset < stream.pos {
                missing.push(format!(
                    "memory at {:#x}: its bytes overlap what came before",
                    load.vaddr
                ));
            } else {
                for (part, data) in &mut parts {
                    if data.is_none() {
                        continue;
                    }
                    let within = part.vaddr - load.vaddr;
                    if within >= load.filesz {
                        *data = None;
                        continue;
                    }
                    stream.skip_to(load.offset.saturating_add(within))?;
                    let want = part.memsz.min(load.filesz - within);
                    let mut bytes = Vec::with_capacity(want as usize);
                    stream.take(want, &mut bytes)?;
                    kept += bytes.len() as u64;
                    *data = Some(bytes);
                    if stream.eof {
                        cut = true;
                        break;
                    }
                }
            }
        }
        // A window over memory the core does not hold (not dumped, or past the cut) keeps
        // only its header.
        for (_, data) in &mut parts {
            if data.as_ref().is_some_and(Vec::is_empty) {
                *data = None;
            }
        }
        pieces.extend(parts);
    }
    if cut {
        missing.push(format!(
            "memory: the core is cut off at {} bytes",
            stream.pos
        ));
    }
    // Read to the end: the kernel waits for the pipe to be drained.
    stream.skip_to(u64::MAX)?;

    Ok(Trimmed {
        bytes: write(&head, &note_bytes, &pieces),
        read: stream.pos,
        kept,
        threads: core.threads.len(),
        missing,
    })
}

/// `load` cut at the windows' edges: the parts inside a window (to be kept: `Some`) and the
/// gaps between them (kept as headers only: `None`), covering the whole segment in order.
fn split(load: &Load, windows: &[(u64, u64)]) -> Vec<(Load, Option<Vec<u8>>)> {
    let (start, end) = (load.vaddr, load.vaddr.saturating_add(load.memsz));
    let mut out = Vec::new();
    let mut at = start;
    let part = |from: u64, to: u64| Load {
        offset: 0,
        vaddr: from,
        filesz: 0,
        memsz: to - from,
        flags: load.flags,
    };
    for &(ws, we) in windows {
        let (s, e) = (ws.max(start), we.min(end));
        if s >= e {
            continue;
        }
        if s > at {
            out.push((part(at, s), None));
        }
        out.push((part(s, e), Some(Vec::new())));
        at = e;
    }
    if at < end || out.is_empty() {
        out.push((part(at, end), None));
    }
    out
}

fn program_header(
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
) -> Vec<u8> {
    let mut h = Vec::with_capacity(56);
    h.extend_from_slice(&kind.to_le_bytes());
    h.extend_from_slice(&flags.to_le_bytes());
    h.extend_from_slice(&offset.to_le_bytes());
    h.extend_from_slice(&vaddr.to_le_bytes());
    h.extend_from_slice(&0u64.to_le_bytes());
    h.extend_from_slice(&filesz.to_le_bytes());
    h.extend_from_slice(&memsz.to_le_bytes());
    h.extend_from_slice(&(if kind == elf::PT_LOAD { 4096u64 } else { 4 }).to_le_bytes());
    h
}

/// The trimmed core's bytes: the original ELF header (its program headers moved), a note
/// segment with every note, then a `PT_LOAD` per piece, the kept bytes after the headers.
fn write(head: &[u8], notes: &[u8], pieces: &[(Load, Option<Vec<u8>>)]) -> Vec<u8> {
    let count = 1 + pieces.len();
    let headers_end = 64 + 56 * count as u64;
    let mut header = head[..64].to_vec();
    header[32..40].copy_from_slice(&64u64.to_le_bytes());
    // No section headers.
    header[40..48].copy_from_slice(&0u64.to_le_bytes());
    header[54..56].copy_from_slice(&56u16.to_le_bytes());
    header[56..58]
        .copy_from_slice(&(count.min(usize::from(elf::PN_XNUM - 1)) as u16).to_le_bytes());
    header[58..64].copy_from_slice(&[0; 6]);
    let mut out = header;
    let mut data = Vec::new();
    let notes_at = headers_end;
    out.extend(program_header(
        elf::PT_NOTE,
        0,
        notes_at,
        0,
        notes.len() as u64,
        0,
    ));
    data.extend_from_slice(notes);
    for (load, bytes) in pieces.iter().take(usize::from(elf::PN_XNUM - 2)) {
        let at = headers_end + data.len() as u64;
        let filesz = bytes.as_ref().map_or(0, |b| b.len() as u64);
        out.extend(program_header(
            elf::PT_LOAD,
            load.flags,
            at,
            load.vaddr,
            filesz,
            load.memsz,
        ));
        if let Some(b) = bytes {
            data.extend_from_slice(b);
        }
    }
    out.extend_from_slice(&data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vaddr: u64, memsz: u64) -> Load {
        Load {
            offset: 0,
            vaddr,
            filesz: memsz,
            memsz,
            flags: 6,
        }
    }

    fn shape(parts: &[(Load, Option<Vec<u8>>)]) -> Vec<(u64, u64, bool)> {
        parts
            .iter()
            .map(|(l, d)| (l.vaddr, l.vaddr + l.memsz, d.is_some()))
            .collect()
    }

    #[test]
    fn a_segment_is_cut_at_the_windows_into_kept_parts_and_gaps_covering_it_all() {
        let segment = load(0x1000, 0x4000);
        // A window inside, one over its end, one elsewhere.
        let windows = [(0x1800, 0x2000), (0x4800, 0x6000), (0x9000, 0xa000)];
        assert_eq!(
            shape(&split(&segment, &windows)),
            [
                (0x1000, 0x1800, false),
                (0x1800, 0x2000, true),
                (0x2000, 0x4800, false),
                (0x4800, 0x5000, true),
            ]
        );
        // No window: the whole segment, a header only.
        assert_eq!(shape(&split(&segment, &[])), [(0x1000, 0x5000, false)]);
        // A window over all of it.
        assert_eq!(
            shape(&split(&segment, &[(0, u64::MAX)])),
            [(0x1000, 0x5000, true)]
        );
    }

    #[test]
    fn what_is_not_a_core_is_refused_before_anything_is_read_past_its_header() {
        let options = TrimOptions::default();
        assert_eq!(
            trim(&b"not a core"[..], &options).unwrap_err(),
            CoreError::NotElf
        );
        let mut exe = [0u8; 64];
        exe[..4].copy_from_slice(b"\x7fELF");
        exe[4] = 2;
        exe[5] = 1;
        exe[16] = 3; // ET_DYN
        exe[18] = 62;
        assert_eq!(
            trim(&exe[..], &options).unwrap_err(),
            CoreError::NotCore("shared object or PIE executable")
        );
    }
}
