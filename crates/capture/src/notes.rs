//! Finding the GNU build-id in the bytes of an ELF `PT_NOTE` segment.
//!
//! This is a parser of bytes the loader mapped, so it never trusts a size field: every offset is
//! computed with checked arithmetic and every read is bounds-checked against the segment. A
//! malformed note ends the search; it never reads past the slice.

/// `NT_GNU_BUILD_ID`.
const NT_GNU_BUILD_ID: u32 = 3;
/// The owner name of GNU notes, with its terminating NUL as the note stores it.
const GNU_NAME: &[u8] = b"GNU\0";
/// `namesz`, `descsz`, `type`: three 32-bit words.
const HEADER_LEN: usize = 12;
/// Longest build-id accepted. Real ones are 8 to 32 bytes; `faultline-record` rejects more.
const MAX_BUILD_ID_LEN: usize = 64;

/// The descriptor of the first `NT_GNU_BUILD_ID` note in `notes`, the contents of one
/// `PT_NOTE` segment.
///
/// `segment_align` is the segment's `p_align`. Notes are padded to 4 bytes, except in segments
/// aligned to 8, where the linker pads them to 8 (`.note.gnu.property` on x86-64 lives in such
/// a segment); this is also how elfutils and the `object` crate read them. Words are in the
/// byte order of the running process, because these are its own mapped notes.
pub(crate) fn find_build_id(notes: &[u8], segment_align: u64) -> Option<&[u8]> {
    let align = if segment_align == 8 { 8 } else { 4 };
    let mut offset = 0usize;
    while offset < notes.len() {
        let header = notes.get(offset..offset.checked_add(HEADER_LEN)?)?;
        let name_len = usize::try_from(read_u32(header, 0)?).ok()?;
        let desc_len = usize::try_from(read_u32(header, 4)?).ok()?;
        let note_type = read_u32(header, 8)?;

        let name_start = offset + HEADER_LEN;
        let name_end = name_start.checked_add(name_len)?;
        let desc_start = align_up(name_end, align)?;
        let desc_end = desc_start.checked_add(desc_len)?;
        let name = notes.get(name_start..name_end)?;
        let desc = notes.get(desc_start..desc_end)?;

        if note_type == NT_GNU_BUILD_ID && name == GNU_NAME {
            return (!desc.is_empty() && desc.len() <= MAX_BUILD_ID_LEN).then_some(desc);
        }
        offset = align_up(desc_end, align)?;
    }
    None
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(word.try_into().ok()?))
}

fn align_up(value: usize, align: usize) -> Option<usize> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One note, laid out as a linker would with `align`-byte padding.
    fn note(name: &[u8], note_type: u32, desc: &[u8], align: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for word in [name.len(), desc.len()] {
            out.extend_from_slice(&u32::try_from(word).unwrap_or(u32::MAX).to_ne_bytes());
        }
        out.extend_from_slice(&note_type.to_ne_bytes());
        out.extend_from_slice(name);
        out.resize(out.len().next_multiple_of(align), 0);
        out.extend_from_slice(desc);
        out.resize(out.len().next_multiple_of(align), 0);
        out
    }

    const ID: [u8; 20] = [
        0x35, 0x3b, 0x2d, 0xef, 0x6b, 0xfb, 0x7b, 0xe6, 0x87, 0x8e, 0x36, 0x73, 0x46, 0xab, 0x4c,
        0x13, 0x39, 0x1d, 0x67, 0x5e,
    ];

    #[track_caller]
    fn check(notes: &[u8], align: u64, expected: Option<&[u8]>) {
        assert_eq!(find_build_id(notes, align), expected);
    }

    #[test]
    fn finds_the_build_id_note() {
        check(&note(b"GNU\0", 3, &ID, 4), 4, Some(&ID));
    }

    #[test]
    fn skips_other_notes_before_it() {
        // `.note.ABI-tag` comes first in most executables.
        let mut notes = note(
            b"GNU\0",
            1,
            &[0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
            4,
        );
        notes.extend(note(b"Go\0\0", 4, b"go build id", 4));
        // A name whose length is not a multiple of four exercises the padding.
        notes.extend(note(b"stapsdt\0", 3, &[1, 2, 3], 4));
        notes.extend(note(b"GNU\0", 3, &ID, 4));
        check(&notes, 4, Some(&ID));
    }

    #[test]
    fn honours_eight_byte_alignment() {
        let mut notes = note(b"GNU\0", 5, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 8);
        notes.extend(note(b"GNU\0", 3, &ID[..12], 8));
        check(&notes, 8, Some(&ID[..12]));
    }

    #[test]
    fn ignores_build_id_types_from_other_owners() {
        check(&note(b"Xen\0", 3, &ID, 4), 4, None);
        check(&note(b"GNU", 3, &ID, 4), 4, None);
    }

    #[test]
    fn rejects_empty_and_oversized_build_ids() {
        check(&note(b"GNU\0", 3, &[], 4), 4, None);
        check(&note(b"GNU\0", 3, &[7; 65], 4), 4, None);
        check(&note(b"GNU\0", 3, &[7; 64], 4), 4, Some(&[7; 64]));
    }

    #[test]
    fn never_reads_past_the_segment() {
        let full = note(b"GNU\0", 3, &ID, 4);
        // Every truncation, including ones that cut a header or descriptor in half.
        for len in 0..full.len() {
            check(&full[..len], 4, None);
        }
        check(&[], 4, None);
    }

    #[test]
    fn survives_hostile_sizes() {
        for (name_len, desc_len) in [(u32::MAX, 0), (4, u32::MAX), (u32::MAX - 3, u32::MAX - 3)] {
            let mut notes = Vec::new();
            notes.extend_from_slice(&name_len.to_ne_bytes());
            notes.extend_from_slice(&desc_len.to_ne_bytes());
            notes.extend_from_slice(&3u32.to_ne_bytes());
            notes.extend_from_slice(b"GNU\0");
            notes.extend_from_slice(&ID);
            check(&notes, 4, None);
        }
    }
}
