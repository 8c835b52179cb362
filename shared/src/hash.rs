//! `CapHash`: the 32-byte content address of a cap, and the hashing domains.
//!
//! Every digest is BLAKE3 in keyed mode. Each domain (one per cap kind, plus
//! the Data and CNode Merkle leaves/nodes and the type chain) has its own 32-byte key,
//! derived once as `blake3::derive_key("capbox v1 <domain>", b"")`. Two inputs
//! hashed in different domains therefore never collide by construction, even
//! when their payload bytes are equal.

use core::fmt;

use spin::Once;

/// Length in bytes of a [`CapHash`].
pub const HASH_LEN: usize = 32;

/// A cap's content address: BLAKE3 over its canonical form, in its kind's domain.
#[derive(Clone, Copy, Eq, PartialOrd, Ord, Default)]
pub struct CapHash(pub [u8; HASH_LEN]);

impl PartialEq for CapHash {
    /// Four word compares: the derived `==` on 32 bytes is a `memcmp` call,
    /// a byte loop in the guest (no SSE), on every directory lookup.
    fn eq(&self, other: &Self) -> bool {
        let word = |h: &CapHash, i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&h.0[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        (0..4).fold(0, |acc, i| acc | (word(self, i) ^ word(other, i))) == 0
    }
}

impl core::hash::Hash for CapHash {
    /// Feeds only the first 8 bytes: a BLAKE3 output is uniform, so they
    /// spread keys as well as all 32 would, and finding two caps that
    /// share them takes ~2^32 hashing work per collision, far more than
    /// a lookup chain it could lengthen. (Equality still compares all 32.)
    /// Directory lookups are on every kernel op's path.
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// Why a hex string is not a [`CapHash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HexError {
    /// The string does not have exactly 64 hex digits.
    WrongLength(usize),
    /// A character that is not a hex digit, at this byte position.
    BadDigit(usize),
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::WrongLength(n) => {
                write!(f, "a cap hash is 64 hex digits, got {n} characters")
            }
            HexError::BadDigit(at) => write!(f, "not a hex digit at position {at}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for HexError {}

impl CapHash {
    /// Wraps raw digest bytes.
    pub const fn from_bytes(bytes: [u8; HASH_LEN]) -> Self {
        CapHash(bytes)
    }

    /// The raw digest bytes.
    pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> alloc::string::String {
        let mut out = alloc::string::String::with_capacity(HASH_LEN * 2);
        for byte in self.0 {
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0xf));
        }
        out
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, HexError> {
        let bytes = text.as_bytes();
        if bytes.len() != HASH_LEN * 2 {
            return Err(HexError::WrongLength(bytes.len()));
        }
        let mut out = [0u8; HASH_LEN];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let high = hex_value(pair[0]).ok_or(HexError::BadDigit(2 * i))?;
            let low = hex_value(pair[1]).ok_or(HexError::BadDigit(2 * i + 1))?;
            out[i] = (high << 4) | low;
        }
        Ok(CapHash(out))
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0xf)])
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for CapHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CapHash({self})")
    }
}

impl fmt::Display for CapHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A hashing domain: each has its own BLAKE3 key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Domain {
    /// Root of a Data cap: `len ‖ merkle root`.
    CapData,
    /// Root of a CNode: `count ‖ slot-tree root`.
    CapCNode,
    /// Canonical encoding of an Image.
    CapImage,
    /// Canonical encoding of an Instance.
    CapInstance,
    /// Canonical encoding of a Type.
    CapType,
    /// One 4 KiB page of a Data cap (a Merkle leaf).
    DataPage,
    /// An inner Merkle node: `left ‖ right`.
    DataNode,
    /// `parent chain ‖ image hash` for a child type identity.
    TypeChain,
    /// An occupied CNode slot (a slot-tree leaf): the target's hash.
    CNodeSlot,
    /// An inner node of a CNode's slot tree: `left ‖ right`.
    CNodeNode,
}

const DOMAIN_COUNT: usize = 10;

impl Domain {
    const ALL: [Domain; DOMAIN_COUNT] = [
        Domain::CapData,
        Domain::CapCNode,
        Domain::CapImage,
        Domain::CapInstance,
        Domain::CapType,
        Domain::DataPage,
        Domain::DataNode,
        Domain::TypeChain,
        Domain::CNodeSlot,
        Domain::CNodeNode,
    ];

    /// The `derive_key` context string; part of the hash format (never change).
    const fn context(self) -> &'static str {
        match self {
            Domain::CapData => "capbox v1 cap Data",
            Domain::CapCNode => "capbox v1 cap CNode",
            Domain::CapImage => "capbox v1 cap Image",
            Domain::CapInstance => "capbox v1 cap Instance",
            Domain::CapType => "capbox v1 cap Type",
            Domain::DataPage => "capbox v1 data page",
            Domain::DataNode => "capbox v1 data node",
            Domain::TypeChain => "capbox v1 type chain",
            Domain::CNodeSlot => "capbox v1 cnode slot",
            Domain::CNodeNode => "capbox v1 cnode node",
        }
    }

    fn key(self) -> &'static [u8; 32] {
        static KEYS: Once<[[u8; 32]; DOMAIN_COUNT]> = Once::new();
        let keys = KEYS.call_once(|| Domain::ALL.map(|d| blake3::derive_key(d.context(), b"")));
        &keys[self as usize]
    }
}

/// Hashes `input` in `domain`.
pub(crate) fn hash_in(domain: Domain, input: &[u8]) -> [u8; HASH_LEN] {
    *blake3::keyed_hash(domain.key(), input).as_bytes()
}

/// ELF note type (owner "capbox", section `.note.capbox-abi`) of the guest's
/// CPU-feature note: a little-endian `u32` bit set of what the guest's code
/// needs of the CPU. A guest without the note needs nothing beyond x86_64.
pub const GUEST_FEATURES_NOTE_TYPE: u32 = 2;
/// Bit of [`GUEST_FEATURES_NOTE_TYPE`]: the guest runs SSE4.1 code (built
/// with `CAPBOX_GUEST_SIMD=1`).
pub const GUEST_NEEDS_SSE41: u32 = 1;

/// Hashes one 4 KiB page in `domain`: [`hash_in`], or with the
/// `simd-hash` feature on x86_64, BLAKE3's SSE4.1 code (the four 1 KiB
/// chunks in parallel). That build is only for CPUs with SSE4.1: the guest
/// built with it is refused by the host on any other.
pub(crate) fn hash_page_in(domain: Domain, page: &[u8; 4096]) -> [u8; HASH_LEN] {
    #[cfg(all(feature = "simd-hash", target_arch = "x86_64"))]
    {
        simd::keyed_hash_page(domain.key(), page)
    }
    #[cfg(not(all(feature = "simd-hash", target_arch = "x86_64")))]
    {
        hash_in(domain, page)
    }
}

/// BLAKE3 of one 4 KiB page with the SSE4.1 `hash_many` the blake3 crate's
/// build script assembles and links (also for `x86_64-unknown-none`, where
/// blake3 itself never picks it: its `cpufeatures` check answers "no" on
/// `target_os = "none"`).
#[cfg(all(feature = "simd-hash", target_arch = "x86_64"))]
mod simd {
    use super::HASH_LEN;

    const CHUNK_START: u8 = 1;
    const CHUNK_END: u8 = 2;
    const PARENT: u8 = 4;
    const ROOT: u8 = 8;
    const KEYED_HASH: u8 = 16;
    const CHUNK_LEN: usize = 1024;
    const BLOCKS_PER_CHUNK: usize = 16;

    // SAFETY: the declaration matches the C signature of blake3's
    // `blake3_hash_many_sse41` (the blake3 crate links that file into this
    // build); calling it is still unsafe, see `hash_many`.
    unsafe extern "C" {
        /// blake3's `blake3_hash_many_sse41` (c/blake3_sse41_x86-64_unix.S).
        fn blake3_hash_many_sse41(
            inputs: *const *const u8,
            num_inputs: usize,
            blocks: usize,
            key: *const u32,
            counter: u64,
            increment_counter: bool,
            flags: u8,
            flags_start: u8,
            flags_end: u8,
            out: *mut u8,
        );
    }

    /// `hash_many` over `inputs` (each `blocks` 64-byte blocks), writing one
    /// 32-byte chaining value per input to `out`.
    fn hash_many<const N: usize>(
        inputs: &[*const u8; N],
        blocks: usize,
        key: &[u32; 8],
        counters: bool,
        flags: [u8; 3],
        out: &mut [u8],
    ) {
        assert!(out.len() >= N * HASH_LEN);
        // The function only uses SSE4.1, which this build requires of the
        // CPU (the host checks CPUID before loading a guest built with it).
        // SAFETY: each input points to `blocks * 64` readable bytes (the
        // callers pass slices of that length), `key` is 8 words, `out`
        // holds `N * 32` bytes (checked above), SSE4.1 is present.
        unsafe {
            blake3_hash_many_sse41(
                inputs.as_ptr(),
                N,
                blocks,
                key.as_ptr(),
                0,
                counters,
                flags[0],
                flags[1],
                flags[2],
                out.as_mut_ptr(),
            );
        }
    }

    /// `blake3::keyed_hash(key, page)`, bit for bit: four chunks, then two
    /// parents, then the root parent.
    pub(super) fn keyed_hash_page(key: &[u8; 32], page: &[u8; 4096]) -> [u8; HASH_LEN] {
        let key: [u32; 8] = core::array::from_fn(|i| {
            u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]])
        });
        let chunks: [*const u8; 4] = core::array::from_fn(|i| page[i * CHUNK_LEN..].as_ptr());
        let mut cvs = [0u8; 4 * HASH_LEN];
        hash_many(
            &chunks,
            BLOCKS_PER_CHUNK,
            &key,
            true,
            [KEYED_HASH, CHUNK_START, CHUNK_END],
            &mut cvs,
        );
        let pairs = [cvs.as_ptr(), cvs[2 * HASH_LEN..].as_ptr()];
        let mut parents = [0u8; 2 * HASH_LEN];
        hash_many(
            &pairs,
            1,
            &key,
            false,
            [KEYED_HASH | PARENT, 0, 0],
            &mut parents,
        );
        let mut root = [0u8; HASH_LEN];
        hash_many(
            &[parents.as_ptr()],
            1,
            &key,
            false,
            [KEYED_HASH | PARENT | ROOT, 0, 0],
            &mut root,
        );
        root
    }
}

/// An incremental hasher in `domain` (for encodings hashed as they stream).
pub(crate) fn hasher_in(domain: Domain) -> blake3::Hasher {
    blake3::Hasher::new_keyed(domain.key())
}

/// Largest input [`hash_parts_in`] gathers into one buffer (one BLAKE3 block).
const SMALL_PARTS: usize = 64;

/// Hashes the concatenation of `parts` in `domain` without building it.
/// Small inputs (a Merkle node's `left ‖ right`, a Data root's
/// `len ‖ root`: at most [`SMALL_PARTS`] bytes) are gathered on the stack
/// and hashed in one shot: the same BLAKE3 output as streaming them, without
/// setting up and finalizing a streaming `Hasher` (on every commit's path to
/// the root).
pub(crate) fn hash_parts_in(domain: Domain, parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let total: usize = parts.iter().map(|part| part.len()).sum();
    if total <= SMALL_PARTS {
        let mut buf = [0u8; SMALL_PARTS];
        let mut at = 0;
        for part in parts {
            buf[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        return hash_in(domain, &buf[..total]);
    }
    let mut hasher = blake3::Hasher::new_keyed(domain.key());
    for part in parts {
        hasher.update(part);
    }
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let hash = CapHash::from_bytes(core::array::from_fn(|i| i as u8 * 7));
        let hex = hash.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(CapHash::from_hex(&hex), Ok(hash));
        assert_eq!(CapHash::from_hex(&hex.to_uppercase()), Ok(hash));
        assert_eq!(CapHash::from_hex("abc"), Err(HexError::WrongLength(3)));
        let mut bad = hex.clone();
        bad.replace_range(10..11, "g");
        assert_eq!(CapHash::from_hex(&bad), Err(HexError::BadDigit(10)));
        assert_eq!(alloc::format!("{hash:?}"), alloc::format!("CapHash({hex})"));
    }

    #[test]
    fn domains_separate_equal_inputs() {
        let a = hash_in(Domain::CapCNode, b"same");
        let b = hash_in(Domain::CapImage, b"same");
        assert_ne!(a, b);
        assert_eq!(a, hash_parts_in(Domain::CapCNode, &[b"sa", b"me"]));
    }

    #[test]
    fn page_hash_is_the_keyed_hash_of_the_page() {
        #[cfg(all(feature = "simd-hash", target_arch = "x86_64"))]
        if !std::is_x86_feature_detected!("sse4.1") {
            std::eprintln!(
                "SKIPPED page_hash_is_the_keyed_hash_of_the_page: no SSE4.1 on this CPU"
            );
            return;
        }
        let mut page = [0u8; 4096];
        for (i, byte) in page.iter_mut().enumerate() {
            *byte = (i * 31 + i / 1024) as u8;
        }
        for domain in [Domain::DataPage, Domain::CapData] {
            let expected = *blake3::keyed_hash(domain.key(), &page).as_bytes();
            assert_eq!(hash_page_in(domain, &page), expected);
        }
        assert_eq!(
            hash_page_in(Domain::DataPage, &[0u8; 4096]),
            hash_in(Domain::DataPage, &[0u8; 4096])
        );
    }

    #[test]
    fn parts_hash_as_their_concatenation_below_and_above_the_small_limit() {
        let bytes: alloc::vec::Vec<u8> = (0..200u8).collect();
        for total in [0, 1, 40, 63, 64, 65, 128, 200] {
            for split in [0, total / 3, total / 2, total] {
                let (left, right) = bytes[..total].split_at(split);
                let streamed = {
                    let mut hasher = hasher_in(Domain::DataNode);
                    hasher.update(left);
                    hasher.update(right);
                    *hasher.finalize().as_bytes()
                };
                assert_eq!(
                    hash_parts_in(Domain::DataNode, &[left, right]),
                    streamed,
                    "total {total}, split {split}"
                );
                assert_eq!(streamed, hash_in(Domain::DataNode, &bytes[..total]));
            }
        }
    }
}
