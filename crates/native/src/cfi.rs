//! Where a module's call frame information covers: the address ranges of the FDEs of its
//! `.eh_frame` and `.debug_frame`, to tell a frame found by CFI from one found by the frame
//! pointer (framehop falls back to the frame pointer silently).

use gimli::{BaseAddresses, CieOrFde, DebugFrame, EhFrame, LittleEndian, UnwindSection};

/// The `[start, end)` ranges the FDEs of an `.eh_frame` at `svma` cover.
pub fn eh_frame_ranges(data: &[u8], svma: u64) -> Vec<(u64, u64)> {
    let section = EhFrame::new(data, LittleEndian);
    let bases = BaseAddresses::default().set_eh_frame(svma);
    ranges(&section, &bases)
}

/// The `[start, end)` ranges the FDEs of a `.debug_frame` cover.
pub fn debug_frame_ranges(data: &[u8]) -> Vec<(u64, u64)> {
    let mut section = DebugFrame::new(data, LittleEndian);
    section.set_address_size(8);
    ranges(&section, &BaseAddresses::default())
}

fn ranges<'a, S>(section: &S, bases: &BaseAddresses) -> Vec<(u64, u64)>
where
    S: UnwindSection<gimli::EndianSlice<'a, LittleEndian>>,
{
    let mut out = Vec::new();
    let mut entries = section.entries(bases);
    // A malformed entry ends the walk: what was read is kept.
    while let Ok(Some(entry)) = entries.next() {
        if let CieOrFde::Fde(partial) = entry
            && let Ok(fde) = partial.parse(S::cie_from_offset)
        {
            let start = fde.initial_address();
            out.push((start, start.saturating_add(fde.len())));
        }
    }
    out
}
