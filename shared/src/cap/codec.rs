//! Canonical encoding and strict decoding of caps (format in `Cap::encode`).

use alloc::string::String;
use alloc::vec::Vec;

use super::data::{MAX_DATA_LEN, PAGE_SIZE, Page};
use super::image::check;
use super::page::SharedPage;
use super::{
    CNode, Cap, CapError, CapHashOrRef, CapKind, Data, Image, InstanceCap, MAX_CNODE_SLOTS,
    MAX_ENDPOINT_NAME_LEN, MAX_ENDPOINTS, MAX_IMAGE_SECTION_LEN, TypeCap,
};
use crate::hash::{CapHash, HASH_LEN};

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn settled(target: &CapHashOrRef) -> Result<&CapHash, CapError> {
    target.as_hash().ok_or(CapError::UnsettledRef)
}

pub(super) fn encode_data(data: &Data, out: &mut Vec<u8>) {
    out.extend_from_slice(&data.len().to_le_bytes());
    let count_at = out.len();
    put_u32(out, 0);
    let mut count: u32 = 0;
    for (index, page) in data.nonzero_pages() {
        put_u32(out, index);
        out.extend_from_slice(page);
        count += 1;
    }
    out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
}

pub(super) fn encode_cnode(cnode: &CNode, out: &mut Vec<u8>) -> Result<(), CapError> {
    put_u32(out, cnode.len() as u32);
    for (slot, target) in cnode.iter() {
        put_u32(out, slot);
        out.extend_from_slice(settled(target)?.as_bytes());
    }
    Ok(())
}

pub(super) fn encode_image(image: &Image, out: &mut Vec<u8>) -> Result<(), CapError> {
    image.check_limits()?;
    for section in [&image.code, &image.ro_data, &image.rw_data] {
        put_u32(out, section.len() as u32);
        out.extend_from_slice(section);
    }
    put_u32(out, image.heap_pages);
    put_u32(out, image.stack_size);
    put_u32(out, image.endpoints.len() as u32);
    for &pc in &image.endpoints {
        put_u32(out, pc);
    }
    // Names: a trailing section only when set (`check_limits` checked them),
    // so an image without names encodes (and hashes) as before names existed.
    for name in &image.endpoint_names {
        put_u32(out, name.len() as u32);
        out.extend_from_slice(name.as_bytes());
    }
    Ok(())
}

pub(super) fn encode_instance(instance: &InstanceCap, out: &mut Vec<u8>) -> Result<(), CapError> {
    let memory = settled(&instance.memory)?;
    let root_cnode = settled(&instance.root_cnode)?;
    for hash in [
        &instance.image,
        memory,
        root_cnode,
        &instance.image_hash_chain,
    ] {
        out.extend_from_slice(hash.as_bytes());
    }
    Ok(())
}

/// A cursor over untrusted bytes; every read is bounds-checked.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CapError> {
        if self.rest.len() < n {
            return Err(CapError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CapError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CapError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CapError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, CapError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn hash(&mut self, what: &'static str) -> Result<CapHash, CapError> {
        Ok(CapHash(self.array::<HASH_LEN>(what)?))
    }

    /// A `u32` count of items of `item_size` bytes each; checked against the
    /// bytes left before anything is allocated.
    fn count(&mut self, item_size: usize, what: &'static str) -> Result<u32, CapError> {
        let count = self.u32(what)?;
        if (count as usize).saturating_mul(item_size) > self.rest.len() {
            return Err(CapError::Truncated(what));
        }
        Ok(count)
    }

    fn section(&mut self, what: &'static str) -> Result<Vec<u8>, CapError> {
        let len = self.u32(what)?;
        check(what, len.into(), MAX_IMAGE_SECTION_LEN.into())?;
        Ok(self.take(len as usize, what)?.to_vec())
    }
}

pub(super) fn decode(bytes: &[u8]) -> Result<Cap, CapError> {
    let mut reader = Reader { rest: bytes };
    let tag = reader.u8("kind tag")?;
    let kind = CapKind::from_tag(tag).ok_or(CapError::UnknownTag(tag))?;
    let cap = match kind {
        CapKind::Data => Cap::Data(decode_data(&mut reader)?),
        CapKind::CNode => Cap::CNode(decode_cnode(&mut reader)?),
        CapKind::Image => Cap::Image(decode_image(&mut reader)?),
        CapKind::Instance => Cap::Instance(InstanceCap {
            image: reader.hash("Instance image")?,
            memory: CapHashOrRef::Hash(reader.hash("Instance memory")?),
            root_cnode: CapHashOrRef::Hash(reader.hash("Instance root_cnode")?),
            image_hash_chain: reader.hash("Instance image_hash_chain")?,
        }),
        CapKind::Type => Cap::Type(TypeCap {
            image_hash_chain: reader.hash("Type image_hash_chain")?,
        }),
    };
    if !reader.rest.is_empty() {
        return Err(CapError::TrailingBytes(reader.rest.len()));
    }
    Ok(cap)
}

fn decode_data(reader: &mut Reader<'_>) -> Result<Data, CapError> {
    let len = reader.u64("Data length")?;
    check("Data length", len, MAX_DATA_LEN)?;
    let page_count = len.div_ceil(PAGE_SIZE as u64);
    let count = reader.count(4 + PAGE_SIZE, "Data page count")?;
    let mut pages = Vec::with_capacity(count as usize);
    let mut previous: Option<u32> = None;
    for _ in 0..count {
        let index = reader.u32("Data page index")?;
        if previous.is_some_and(|p| index <= p) {
            return Err(CapError::NonCanonical("Data pages not strictly ascending"));
        }
        previous = Some(index);
        if u64::from(index) >= page_count {
            return Err(CapError::NonCanonical("Data page past the length"));
        }
        let page: &Page = reader
            .take(PAGE_SIZE, "Data page")?
            .try_into()
            .map_err(|_| CapError::NonCanonical("Data page length"))?;
        if page.iter().all(|&b| b == 0) {
            return Err(CapError::NonCanonical("all-zero Data page present"));
        }
        let start = u64::from(index) * PAGE_SIZE as u64;
        let in_range = (len - start).min(PAGE_SIZE as u64) as usize;
        if page[in_range..].iter().any(|&b| b != 0) {
            return Err(CapError::NonCanonical(
                "non-zero bytes past the Data length",
            ));
        }
        pages.push((index, SharedPage::new(page)));
    }
    Data::from_parts(len, pages)
}

fn decode_cnode(reader: &mut Reader<'_>) -> Result<CNode, CapError> {
    let count = reader.count(4 + HASH_LEN, "CNode slot count")?;
    check("CNode slot count", count.into(), MAX_CNODE_SLOTS.into())?;
    let mut cnode = CNode::new();
    let mut previous: Option<u32> = None;
    for _ in 0..count {
        let slot = reader.u32("CNode slot index")?;
        if slot >= MAX_CNODE_SLOTS {
            return Err(CapError::SlotOutOfRange(slot));
        }
        if previous.is_some_and(|p| slot <= p) {
            return Err(CapError::NonCanonical("CNode slots not strictly ascending"));
        }
        previous = Some(slot);
        cnode.set(slot, CapHashOrRef::Hash(reader.hash("CNode slot hash")?))?;
    }
    Ok(cnode)
}

fn decode_image(reader: &mut Reader<'_>) -> Result<Image, CapError> {
    let code = reader.section("Image code length")?;
    let ro_data = reader.section("Image ro_data length")?;
    let rw_data = reader.section("Image rw_data length")?;
    let heap_pages = reader.u32("Image heap_pages")?;
    let stack_size = reader.u32("Image stack_size")?;
    let count = reader.count(4, "Image endpoint count")?;
    check("Image endpoint count", count.into(), MAX_ENDPOINTS.into())?;
    let mut endpoints = Vec::with_capacity(count as usize);
    for _ in 0..count {
        endpoints.push(reader.u32("Image endpoint")?);
    }
    // The optional names section: one length-prefixed UTF-8 name per
    // endpoint, present only if any name is set (`check_limits` below).
    let mut endpoint_names = Vec::new();
    if !reader.rest.is_empty() {
        for _ in 0..count {
            let len = reader.u32("Image endpoint name length")?;
            check(
                "Image endpoint name length",
                len.into(),
                MAX_ENDPOINT_NAME_LEN.into(),
            )?;
            let bytes = reader.take(len as usize, "Image endpoint name")?;
            let name = core::str::from_utf8(bytes)
                .map_err(|_| CapError::NonCanonical("Image endpoint name is not UTF-8"))?;
            endpoint_names.push(String::from(name));
        }
    }
    let image = Image {
        code,
        ro_data,
        rw_data,
        heap_pages,
        stack_size,
        endpoints,
        endpoint_names,
    };
    image.check_limits()?;
    Ok(image)
}
