//! The type of a file from its first bytes (`--file-type`): the `infer` crate's magic numbers,
//! refined where `file --mime-type` (libmagic, what administrators compare with) says more, and
//! a small rule for plain text, which has no magic number.

/// Bytes of a file's start that type detection looks at (one READ).
pub const FILE_TYPE_BYTES: u32 = 8 << 10;

/// The MIME type of a file starting with `head` (its first [`FILE_TYPE_BYTES`] or all of it
/// when shorter); `None` when unknown (an empty file included).
pub fn detect(head: &[u8]) -> Option<&'static str> {
    if head.is_empty() {
        return None;
    }
    if let Some(t) = infer::get(head) {
        let mime = t.mime_type();
        if mime == "application/x-executable" {
            return Some(elf_kind(head).unwrap_or(mime));
        }
        return Some(mime);
    }
    is_text(head).then_some("text/plain")
}

/// ELF files as libmagic names them: by `e_type`, and a shared object with a program
/// interpreter (`PT_INTERP`) is a position-independent executable.
fn elf_kind(head: &[u8]) -> Option<&'static str> {
    let class64 = *head.get(4)? == 2;
    let little = *head.get(5)? == 1;
    let u16_at = |o: usize| -> Option<u64> {
        let b = head.get(o..o + 2)?;
        Some(if little {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        } as u64)
    };
    let u32_at = |o: usize| -> Option<u64> {
        let b: [u8; 4] = head.get(o..o + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as u64)
    };
    let u64_at = |o: usize| -> Option<u64> {
        let b: [u8; 8] = head.get(o..o + 8)?.try_into().ok()?;
        Some(if little {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    Some(match u16_at(16)? {
        1 => "application/x-object",
        2 => "application/x-executable",
        4 => "application/x-coredump",
        3 => {
            // e_phoff, e_phentsize, e_phnum; program headers within the bytes we have.
            let (phoff, phentsize, phnum) = if class64 {
                (u64_at(32)?, u16_at(54)?, u16_at(56)?)
            } else {
                (u32_at(28)?, u16_at(42)?, u16_at(44)?)
            };
            let has_interp = (0..phnum).any(|i| {
                let at = phoff.saturating_add(i.saturating_mul(phentsize));
                usize::try_from(at)
                    .ok()
                    .and_then(u32_at)
                    .is_some_and(|p_type| p_type == 3)
            });
            if has_interp {
                "application/x-pie-executable"
            } else {
                "application/x-sharedlib"
            }
        }
        _ => return None,
    })
}

/// Plain text: UTF-8 (a character cut by the end of `head` allowed) without NUL and with few
/// control characters other than tab, newline, carriage return and form feed.
fn is_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        // Only an incomplete character at the very end (head is a prefix of the file).
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    };
    if !valid {
        return false;
    }
    let controls = head
        .iter()
        .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b)) || b == 0x7f)
        .count();
    !head.contains(&0) && controls * 100 <= head.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_and_text() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(detect(png), Some("image/png"));
        assert_eq!(detect(b"\xff\xd8\xff\xe0\0\x10JFIF\0"), Some("image/jpeg"));
        assert_eq!(detect(b"GIF89a\x01\0\x01\0"), Some("image/gif"));
        assert_eq!(detect(b"%PDF-1.4\n"), Some("application/pdf"));
        assert_eq!(detect(b"\x1f\x8b\x08\0\0\0\0\0"), Some("application/gzip"));
        assert_eq!(detect(b"PK\x03\x04\x14\0\0\0"), Some("application/zip"));
        assert_eq!(detect(b"hello, world\n"), Some("text/plain"));
        assert_eq!(
            detect("caf\u{e9} na\u{ef}ve\n".as_bytes()),
            Some("text/plain")
        );
        // a multi-byte character cut at the end of the head is still text
        assert_eq!(detect(&"\u{e9}\u{e9}".as_bytes()[..3]), Some("text/plain"));
        assert_eq!(detect(b"bin\0ary"), None);
        assert_eq!(detect(b"\xff\xfe\xfd garbage"), None);
        assert_eq!(detect(b""), None);
    }

    #[test]
    fn elf_kinds_as_libmagic_names_them() {
        // A 64-bit little-endian header with one program header right after it.
        let elf = |e_type: u16, p_type: u32| {
            let mut h = vec![0u8; 64 + 56];
            h[..4].copy_from_slice(b"\x7fELF");
            h[4] = 2;
            h[5] = 1;
            h[6] = 1;
            h[16..18].copy_from_slice(&e_type.to_le_bytes());
            h[18] = 62;
            h[32..40].copy_from_slice(&64u64.to_le_bytes());
            h[54..56].copy_from_slice(&56u16.to_le_bytes());
            h[56..58].copy_from_slice(&1u16.to_le_bytes());
            h[64..68].copy_from_slice(&p_type.to_le_bytes());
            h
        };
        assert_eq!(detect(&elf(1, 0)), Some("application/x-object"));
        assert_eq!(detect(&elf(2, 3)), Some("application/x-executable"));
        assert_eq!(detect(&elf(3, 3)), Some("application/x-pie-executable"));
        assert_eq!(detect(&elf(3, 1)), Some("application/x-sharedlib"));
        assert_eq!(detect(&elf(4, 0)), Some("application/x-coredump"));
    }
}
