//! A key-value service on cap ops: each value is a Data cap in the
//! instance's root CNode, the key is its slot (`0..65536`); the count of
//! keys is the program's one `u64` of static memory.
//!
//! Endpoints (errors are kernel codes in φ7, or `ERR_NOT_FOUND`):
//! `put(key)` stores the input (≤ 64 KiB) and returns 1 if it replaced a
//! value, else 0; `get(key)` outputs the value and returns its length;
//! `delete(key)` returns 1 if the key existed; `len()` the number of keys;
//! `hash(key)` outputs the value's cap hash (32 bytes) and returns 32;
//! `copy(src, dst)` copies a value to a new key (`ERR_OCCUPIED` if `dst`
//! exists).

#![no_std]
#![no_main]

use capbox_sdk::{polkavm_export, CapKind, Error};

/// `get`/`delete`/`hash` of a key that holds no value.
const ERR_NOT_FOUND: u64 = u64::MAX - 16;
/// Largest value.
const MAX_VALUE: usize = 64 * 1024;

static mut COUNT: u64 = 0;
static mut BUF: [u8; MAX_VALUE] = [0; MAX_VALUE];

fn count() -> u64 {
    // SAFETY: a program runs single-threaded; nothing else holds a reference.
    unsafe { core::ptr::addr_of!(COUNT).read() }
}

fn set_count(value: u64) {
    // SAFETY: as above.
    unsafe { core::ptr::addr_of_mut!(COUNT).write(value) }
}

fn buf() -> &'static mut [u8; MAX_VALUE] {
    // SAFETY: single-threaded, and every endpoint takes this reference once.
    unsafe { &mut *core::ptr::addr_of_mut!(BUF) }
}

fn slot(key: u64) -> Result<u32, Error> {
    u32::try_from(key).map_err(|_| Error::Slot)
}

/// The length of the value at `key`, if there is one.
fn value_len(key: u32) -> Result<Option<u64>, Error> {
    Ok(match capbox_sdk::cap_info(key)? {
        Some((CapKind::Data, len)) => Some(len),
        Some(_) => return Err(Error::Kind),
        None => None,
    })
}

fn code(result: Result<u64, Error>) -> u64 {
    result.unwrap_or_else(Error::code)
}

#[polkavm_export]
extern "C" fn put(key: u64) -> u64 {
    code((|| {
        let key = slot(key)?;
        let value = capbox_sdk::read_input(buf())?;
        let existed = value_len(key)?.is_some();
        capbox_sdk::slot_drop(key)?;
        capbox_sdk::data_new(key, value)?;
        if !existed {
            set_count(count() + 1);
        }
        Ok(u64::from(existed))
    })())
}

#[polkavm_export]
extern "C" fn get(key: u64) -> u64 {
    code((|| {
        let key = slot(key)?;
        let Some(len) = value_len(key)? else {
            return Ok(ERR_NOT_FOUND);
        };
        let buf = buf();
        let len = (len as usize).min(buf.len());
        let n = capbox_sdk::data_read(key, 0, &mut buf[..len])?;
        capbox_sdk::set_output(&buf[..n])?;
        Ok(n as u64)
    })())
}

#[polkavm_export]
extern "C" fn delete(key: u64) -> u64 {
    code((|| {
        let key = slot(key)?;
        if value_len(key)?.is_none() {
            return Ok(0);
        }
        capbox_sdk::slot_drop(key)?;
        set_count(count() - 1);
        Ok(1)
    })())
}

#[polkavm_export]
extern "C" fn len() -> u64 {
    count()
}

#[polkavm_export]
extern "C" fn hash(key: u64) -> u64 {
    code((|| {
        let key = slot(key)?;
        if value_len(key)?.is_none() {
            return Ok(ERR_NOT_FOUND);
        }
        let hash = capbox_sdk::hash_of(key)?;
        capbox_sdk::set_output(&hash)?;
        Ok(32)
    })())
}

#[polkavm_export]
extern "C" fn copy(src: u64, dst: u64) -> u64 {
    code((|| {
        let (src, dst) = (slot(src)?, slot(dst)?);
        if value_len(src)?.is_none() {
            return Ok(ERR_NOT_FOUND);
        }
        capbox_sdk::slot_copy(src, dst)?;
        set_count(count() + 1);
        Ok(0)
    })())
}
