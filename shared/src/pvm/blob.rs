//! `deblob` (Graypaper A.1): splitting a program blob into its dynamic jump
//! table `j`, instruction octets `c` and opcode bitmask `k`.
//!
//! `p = E(|j|) ‖ E_1(z) ‖ E(|c|) ‖ E_z(j) ‖ E(c) ‖ E(k)` with `|k| = |c|`.
//! The Graypaper demands that exactly one such split exists, so every field
//! must be canonically encoded, the bitmask's padding bits must be zero and
//! nothing may follow the bitmask.

use alloc::vec::Vec;

use super::error::ProgramError;

/// Largest code length accepted: program counters are 32-bit and the
/// decoder adds up to 25 to the last instruction's counter.
pub const MAX_CODE_LEN: usize = (u32::MAX - 64) as usize;

/// The opcode bitmask `k`: bit `i` is set when octet `i` of the code starts
/// an instruction. Bits past the end read as set (the Graypaper's
/// `k ‖ [1, 1, …]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bitmask<'a> {
    bytes: &'a [u8],
    len: usize,
}

impl<'a> Bitmask<'a> {
    /// A bitmask of `len` bits packed least-significant bit first in `bytes`.
    /// Returns `None` when `bytes` is not exactly `ceil(len / 8)` long.
    pub fn new(bytes: &'a [u8], len: usize) -> Option<Bitmask<'a>> {
        (bytes.len() == len.div_ceil(8)).then_some(Bitmask { bytes, len })
    }

    /// Number of bits (equal to the code length).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the bitmask has no bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bit `i`, with bits past the end reading as set.
    #[inline]
    pub fn is_set(&self, i: usize) -> bool {
        if i >= self.len {
            return true;
        }
        self.bytes[i / 8] & (1 << (i % 8)) != 0
    }

    /// The Graypaper's `skip(i)`: octets minus one to the next set bit,
    /// capped at 24.
    #[inline]
    pub fn skip(&self, i: usize) -> u32 {
        let mut j = 0;
        while j < 24 && !self.is_set(i + 1 + j as usize) {
            j += 1;
        }
        j
    }

    /// The packed octets.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The offsets `i` with [`Self::is_set`]`(i)`, in order, without end
    /// (past the end every bit reads as set).
    pub(crate) fn set_bits(&self) -> SetBits<'a> {
        SetBits {
            mask: *self,
            base: 0,
            word: if self.len > 0 { self.word_at(0) } else { 0 },
        }
    }

    /// How many `i < end` have [`Self::is_set`]`(i)`.
    pub(crate) fn count_set(&self, end: usize) -> usize {
        let inside = end.min(self.len);
        let (full, rest) = self
            .bytes
            .split_at_checked(inside / 8)
            .unwrap_or((self.bytes, &[]));
        let words = full.chunks_exact(8);
        let mut count: usize = words
            .remainder()
            .iter()
            .map(|b| b.count_ones() as usize)
            .sum();
        for word in words {
            let mut octets = [0u8; 8];
            octets.copy_from_slice(word);
            count += u64::from_le_bytes(octets).count_ones() as usize;
        }
        if !inside.is_multiple_of(8) {
            let partial = rest.first().copied().unwrap_or(0) & ((1u8 << (inside % 8)) - 1);
            count += partial.count_ones() as usize;
        }
        count + (end - inside)
    }

    /// The octets from `byte` on as a little-endian `u64`, zeros past the
    /// end.
    #[inline]
    fn word_at(&self, byte: usize) -> u64 {
        let len = self.bytes.len();
        // Near the end, the last eight octets shifted down (a copy of a
        // variable length would be a `memcpy` call).
        let start = byte.min(len.saturating_sub(8));
        match self.bytes.get(start..start + 8) {
            Some(eight) => {
                let mut octets = [0u8; 8];
                octets.copy_from_slice(eight);
                let word = u64::from_le_bytes(octets);
                // `byte - start` octets of it lie before `byte`.
                match byte - start {
                    skipped @ 0..8 => word >> (8 * skipped),
                    _ => 0,
                }
            }
            // A bitmask of fewer than 8 octets.
            None => self
                .bytes
                .get(byte..)
                .unwrap_or(&[])
                .iter()
                .rev()
                .fold(0, |acc, &b| (acc << 8) | u64::from(b)),
        }
    }
}

/// [`Bitmask::set_bits`]: the pre-decoder's walk over instruction starts,
/// 64 bits a step rather than one bit at a time.
pub(crate) struct SetBits<'a> {
    mask: Bitmask<'a>,
    /// The offset of `word`'s bit 0 (a multiple of 64), or from `len` on
    /// the next offset to yield.
    base: usize,
    /// The bits from `base` on not yet yielded.
    word: u64,
}

impl SetBits<'_> {
    /// The next offset whose bit is set.
    #[inline(always)]
    pub(crate) fn next_start(&mut self) -> usize {
        let len = self.mask.len;
        loop {
            if self.base >= len {
                let at = self.base;
                self.base += 1;
                return at;
            }
            if self.word != 0 {
                let at = self.base + self.word.trailing_zeros() as usize;
                if at < len {
                    self.word &= self.word - 1;
                    return at;
                }
                // A padding bit (hand-made parts): the end is next.
                self.word = 0;
                self.base = len;
                continue;
            }
            self.base = (self.base + 64).min(len);
            if self.base < len {
                self.word = self.mask.word_at(self.base / 8);
            }
        }
    }
}

/// A program blob split into its three parts (borrowing the blob).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramParts<'a> {
    /// Dynamic jump table `j`: code offsets. Entries that do not fit 32 bits
    /// are stored as `u32::MAX` (never a valid target).
    pub jump_table: Vec<u32>,
    /// Instruction octets `c`.
    pub code: &'a [u8],
    /// Opcode bitmask `k`.
    pub bitmask: Bitmask<'a>,
}

/// Splits a program blob per the Graypaper's `deblob`.
pub fn deblob(blob: &[u8]) -> Result<ProgramParts<'_>, ProgramError> {
    let mut reader = Reader::new(blob);
    let jump_count = reader.natural("jump-table length")?;
    let entry_size = reader.fixed(1, "jump-table entry size")? as u8;
    let code_len = reader.natural("code length")?;
    if entry_size > 8 {
        return Err(ProgramError::JumpTableEntrySize(entry_size));
    }
    let code_len = usize::try_from(code_len)
        .ok()
        .filter(|&len| len <= MAX_CODE_LEN)
        .ok_or(ProgramError::TooLarge {
            what: "code length",
            value: code_len,
        })?;
    // Bounded by the blob's size before anything is allocated.
    let table_octets = jump_count
        .checked_mul(u64::from(entry_size))
        .filter(|&n| n <= reader.remaining() as u64)
        .ok_or(ProgramError::Truncated {
            what: "jump table",
            offset: reader.offset,
        })?;
    let jump_count = if entry_size == 0 {
        // Zero-width entries take no octets (each is the offset 0); cap their
        // count by the blob's size so input cannot force a huge allocation.
        usize::try_from(jump_count)
            .ok()
            .filter(|&n| n <= blob.len())
            .ok_or(ProgramError::TooLarge {
                what: "jump-table length",
                value: jump_count,
            })?
    } else {
        (table_octets / u64::from(entry_size)) as usize
    };
    let mut jump_table = Vec::with_capacity(jump_count);
    for _ in 0..jump_count {
        let entry = reader.fixed(usize::from(entry_size), "jump-table entry")?;
        jump_table.push(u32::try_from(entry).unwrap_or(u32::MAX));
    }
    let code = reader.bytes(code_len, "code")?;
    let mask_bytes = reader.bytes(code_len.div_ceil(8), "opcode bitmask")?;
    if code_len % 8 != 0 {
        let last = mask_bytes[mask_bytes.len() - 1];
        if last >> (code_len % 8) != 0 {
            return Err(ProgramError::BitmaskPadding);
        }
    }
    if reader.remaining() != 0 {
        return Err(ProgramError::TrailingBytes {
            count: reader.remaining(),
        });
    }
    let bitmask = Bitmask {
        bytes: mask_bytes,
        len: code_len,
    };
    Ok(ProgramParts {
        jump_table,
        code,
        bitmask,
    })
}

/// Encodes `x` with the Graypaper's general natural-number encoding `E`
/// (appendix C), appending to `out`.
pub fn encode_natural(x: u64, out: &mut Vec<u8>) {
    for l in 0..8u32 {
        if x < 1u64 << (7 * (l + 1)) {
            let prefix = (0xFFu32 << (8 - l)) as u8 | (x >> (8 * l)) as u8;
            out.push(prefix);
            out.extend_from_slice(&x.to_le_bytes()[..l as usize]);
            return;
        }
    }
    out.push(0xFF);
    out.extend_from_slice(&x.to_le_bytes());
}

/// Decodes one natural number in the general encoding `E` from the start of
/// `bytes`; returns it and the number of octets it took. Rejects truncated
/// and non-canonical encodings.
pub fn decode_natural(bytes: &[u8]) -> Result<(u64, usize), ProgramError> {
    let mut reader = Reader::new(bytes);
    let value = reader.natural("natural number")?;
    Ok((value, reader.offset))
}

/// A cursor over a blob that yields typed errors naming the field.
pub(crate) struct Reader<'a> {
    blob: &'a [u8],
    pub(crate) offset: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(blob: &'a [u8]) -> Reader<'a> {
        Reader { blob, offset: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.blob.len() - self.offset
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ProgramError> {
        let end = self
            .offset
            .checked_add(n)
            .filter(|&end| end <= self.blob.len())
            .ok_or(ProgramError::Truncated {
                what,
                offset: self.offset,
            })?;
        let out = &self.blob[self.offset..end];
        self.offset = end;
        Ok(out)
    }

    /// A little-endian fixed-width number `E_n` (n ≤ 8).
    pub(crate) fn fixed(&mut self, n: usize, what: &'static str) -> Result<u64, ProgramError> {
        let bytes = self.bytes(n, what)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A natural number in the general encoding `E`, rejecting
    /// non-canonical forms.
    pub(crate) fn natural(&mut self, what: &'static str) -> Result<u64, ProgramError> {
        let start = self.offset;
        let first = self.bytes(1, what)?[0];
        let l = first.leading_ones();
        let value = if l == 8 {
            self.fixed(8, what)?
        } else {
            let high = u64::from(first) & ((1u64 << (7 - l)) - 1);
            let low = self
                .fixed(l as usize, what)
                .map_err(|_| ProgramError::Truncated {
                    what,
                    offset: start,
                })?;
            (high << (8 * l)) | low
        };
        if l > 0 && value < 1u64 << (7 * l) {
            return Err(ProgramError::NonCanonicalNatural {
                what,
                offset: start,
            });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_read_zeros_past_the_end() {
        let bytes: alloc::vec::Vec<u8> = (1..=11).collect();
        let mask = Bitmask::new(&bytes, 88).expect("11 octets");
        assert_eq!(mask.word_at(0), 0x0807_0605_0403_0201);
        assert_eq!(mask.word_at(3), 0x0b0a_0908_0706_0504);
        assert_eq!(mask.word_at(5), 0x0000_0b0a_0908_0706);
        assert_eq!(mask.word_at(10), 0x0b);
        for past in [11, 12, 19, usize::MAX / 2] {
            assert_eq!(mask.word_at(past), 0, "from {past}");
        }
        let short = Bitmask::new(&bytes[..3], 20).expect("3 octets");
        assert_eq!(short.word_at(1), 0x0302);
        assert_eq!(short.word_at(7), 0);
    }
}
