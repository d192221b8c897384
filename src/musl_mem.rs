//! `memcpy` and `memmove` for the static musl build on x86-64.
//!
//! musl's x86-64 `memcpy` (src/string/x86_64/memcpy.s) runs `rep movsq` plus byte-wise `movsb`
//! loops on every call, whatever the length. The scan makes millions of copies shorter than
//! 32 bytes (names, numbers and keys of the output records; measured with a perf uprobe on
//! memcpy: 99.9 % of calls below 32 bytes), where that costs several times glibc's `memcpy`,
//! and made the static binary ~15 % slower than the glibc one (README, "Static build").
//! These take the short lengths with two overlapping unaligned loads and stores and leave long
//! ones to `rep movsb`, which CPUs with ERMS (Intel since Ivy Bridge, AMD since Zen 3) run at
//! full speed. Defining both symbols here keeps musl's memcpy.o and memmove.o out of the link
//! (its memmove jumps into its memcpy, so both go together).
//!
//! No code here may call `memcpy` itself: only fixed-size loads and stores, which the compiler
//! emits as single moves, and inline assembly.

use core::arch::asm;

/// # Safety
/// The C contract: `src` and `dest` valid for `n` bytes and not overlapping.
#[cfg_attr(target_env = "musl", no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    copy_forward(dest, src, n);
    dest
}

/// # Safety
/// The C contract: `src` and `dest` valid for `n` bytes; they may overlap.
#[cfg_attr(target_env = "musl", no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // `dest` starts before `src`, or past its end: a forward copy never reads a byte it
        // has already overwritten (the short paths load everything before storing).
        copy_forward(dest, src, n);
    } else {
        copy_backward(dest, src, n);
    }
    dest
}

#[inline(always)]
unsafe fn copy_forward(dest: *mut u8, src: *const u8, n: usize) {
    if n <= 32 {
        copy_short(dest, src, n);
    } else {
        asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Lengths 0..=32: the first and the last `k` bytes, both loaded before either is stored
/// (so overlapping buffers are safe too).
#[inline(always)]
unsafe fn copy_short(dest: *mut u8, src: *const u8, n: usize) {
    if n >= 16 {
        let a = (src as *const u128).read_unaligned();
        let b = (src.add(n - 16) as *const u128).read_unaligned();
        (dest as *mut u128).write_unaligned(a);
        (dest.add(n - 16) as *mut u128).write_unaligned(b);
    } else if n >= 8 {
        let a = (src as *const u64).read_unaligned();
        let b = (src.add(n - 8) as *const u64).read_unaligned();
        (dest as *mut u64).write_unaligned(a);
        (dest.add(n - 8) as *mut u64).write_unaligned(b);
    } else if n >= 4 {
        let a = (src as *const u32).read_unaligned();
        let b = (src.add(n - 4) as *const u32).read_unaligned();
        (dest as *mut u32).write_unaligned(a);
        (dest.add(n - 4) as *mut u32).write_unaligned(b);
    } else if n > 0 {
        let a = *src;
        let b = *src.add(n / 2);
        let c = *src.add(n - 1);
        *dest = a;
        *dest.add(n / 2) = b;
        *dest.add(n - 1) = c;
    }
}

/// `dest` overlaps the tail of `src`: copy from the last byte down (rare; kept simple).
#[inline(never)]
unsafe fn copy_backward(dest: *mut u8, src: *const u8, n: usize) {
    if n <= 32 {
        copy_short(dest, src, n);
        return;
    }
    asm!(
        "std",
        "rep movsb",
        "cld",
        inout("rcx") n => _,
        inout("rdi") dest.add(n - 1) => _,
        inout("rsi") src.add(n - 1) => _,
        options(nostack)
    );
}

#[cfg(test)]
mod tests {
    use super::{memcpy, memmove};

    /// Every length up to 80 at several alignments, disjoint and overlapping both ways, against
    /// the standard library's copy (the platform's memcpy in the glibc test build).
    #[test]
    fn copies_like_the_reference() {
        let pattern: Vec<u8> = (0..256u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..80 {
            for (s, d) in [
                (0, 100),
                (1, 103),
                (3, 130),
                (10, 5),
                (5, 10),
                (0, 1),
                (1, 0),
            ] {
                let mut buf = pattern.clone();
                let mut want = pattern.clone();
                want[d..d + n].copy_from_slice(&pattern[s..s + n]);
                unsafe { memmove(buf.as_mut_ptr().add(d), buf.as_ptr().add(s), n) };
                assert_eq!(buf, want, "memmove n={n} src={s} dest={d}");
                if s + n <= d || d + n <= s {
                    let mut buf = pattern.clone();
                    unsafe { memcpy(buf.as_mut_ptr().add(d), buf.as_ptr().add(s), n) };
                    assert_eq!(buf, want, "memcpy n={n} src={s} dest={d}");
                }
            }
        }
    }
}
