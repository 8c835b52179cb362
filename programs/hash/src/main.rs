//! Hash-heavy work: BLAKE2b-256 of the input, repeated hashing, and a
//! prime sieve.
//!
//! Endpoints: `blake2b()` outputs BLAKE2b-256 of the input (RFC 7693,
//! unkeyed) and returns the input length; `blake2b_chain(rounds)` hashes
//! the input, then its own digest `rounds` more times, outputs the last
//! digest and returns its first 8 bytes (little-endian); `sieve(n)`
//! returns the number of primes below `n` (n ≤ 2^20) by the sieve of
//! Eratosthenes; `fnv(rounds)` folds FNV-1a over the input `rounds`
//! times and returns the hash.

#![no_std]
#![no_main]

use capbox_sdk::polkavm_export;

const MAX_INPUT: usize = 64 * 1024;
const MAX_SIEVE: usize = 1 << 20;

static mut INPUT: [u8; MAX_INPUT] = [0; MAX_INPUT];
static mut SIEVE: [u8; MAX_SIEVE / 8] = [0; MAX_SIEVE / 8];

fn input() -> &'static [u8] {
    // SAFETY: a program runs single-threaded; each endpoint takes this once.
    let buf = unsafe { &mut *core::ptr::addr_of_mut!(INPUT) };
    match capbox_sdk::read_input(buf) {
        Ok(input) => input,
        Err(_) => capbox_sdk::abort(),
    }
}

const IV: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

const SIGMA: [[usize; 16]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

#[inline(always)]
fn g(v: &mut [u64; 16], a: usize, b: usize, c: usize, d: usize, x: u64, y: u64) {
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
    v[d] = (v[d] ^ v[a]).rotate_right(32);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(24);
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(63);
}

fn compress(h: &mut [u64; 8], block: &[u8; 128], counter: u128, last: bool) {
    let mut m = [0u64; 16];
    for (i, word) in m.iter_mut().enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&block[i * 8..i * 8 + 8]);
        *word = u64::from_le_bytes(bytes);
    }
    let mut v = [0u64; 16];
    v[..8].copy_from_slice(h);
    v[8..].copy_from_slice(&IV);
    v[12] ^= counter as u64;
    v[13] ^= (counter >> 64) as u64;
    if last {
        v[14] = !v[14];
    }
    for round in 0..12 {
        let s = &SIGMA[round % 10];
        g(&mut v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
        g(&mut v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
        g(&mut v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
        g(&mut v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
        g(&mut v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
        g(&mut v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
        g(&mut v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
        g(&mut v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for i in 0..8 {
        h[i] ^= v[i] ^ v[i + 8];
    }
}

/// BLAKE2b with a 32-byte digest, no key.
fn blake2b_256(data: &[u8]) -> [u8; 32] {
    let mut h = IV;
    h[0] ^= 0x0101_0000 ^ 32;
    let mut block = [0u8; 128];
    let mut offset = 0;
    // Every full block but the last is compressed as not-last.
    while data.len() - offset > 128 {
        block.copy_from_slice(&data[offset..offset + 128]);
        offset += 128;
        compress(&mut h, &block, offset as u128, false);
    }
    let rest = &data[offset..];
    block = [0u8; 128];
    block[..rest.len()].copy_from_slice(rest);
    compress(&mut h, &block, data.len() as u128, true);
    let mut out = [0u8; 32];
    for (i, word) in h.iter().take(4).enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
    }
    out
}

fn output(bytes: &[u8]) {
    if capbox_sdk::set_output(bytes).is_err() {
        capbox_sdk::abort();
    }
}

#[polkavm_export]
extern "C" fn blake2b() -> u64 {
    let input = input();
    output(&blake2b_256(input));
    input.len() as u64
}

#[polkavm_export]
extern "C" fn blake2b_chain(rounds: u64) -> u64 {
    let mut digest = blake2b_256(input());
    for _ in 0..rounds {
        digest = blake2b_256(&digest);
    }
    output(&digest);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

#[polkavm_export]
extern "C" fn sieve(n: u64) -> u64 {
    let n = (n as usize).min(MAX_SIEVE);
    // SAFETY: single-threaded; the only reference to the sieve.
    let composite = unsafe { &mut *core::ptr::addr_of_mut!(SIEVE) };
    composite.fill(0);
    let mut count = 0;
    let mut i = 2;
    while i < n {
        if composite[i / 8] & (1 << (i % 8)) == 0 {
            count += 1;
            let mut j = i * i;
            while j < n {
                composite[j / 8] |= 1 << (j % 8);
                j += i;
            }
        }
        i += 1;
    }
    count
}

#[polkavm_export]
extern "C" fn fnv(rounds: u64) -> u64 {
    let input = input();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..rounds {
        for b in input {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}
