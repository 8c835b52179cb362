//! Decoded programs, cached per image hash so an image's code is decoded
//! once and reused by every invocation.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use spin::Mutex;

use crate::hash::CapHash;
use crate::pvm::{Program, ProgramError};

/// Most programs kept; past this the cache forgets an arbitrary one (the
/// next use decodes it again).
pub const MAX_CACHED_PROGRAMS: usize = 256;

/// Image hash → decoded program. `const`-constructible for the guest's
/// statics; the lock is never held while decoding.
pub struct ProgramCache {
    programs: Mutex<BTreeMap<CapHash, Arc<Program>>>,
}

impl Default for ProgramCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgramCache {
    /// An empty cache.
    pub const fn new() -> Self {
        ProgramCache {
            programs: Mutex::new(BTreeMap::new()),
        }
    }

    /// The program for `image`, decoding `code` on a miss.
    pub fn get_or_decode(
        &self,
        image: &CapHash,
        code: &[u8],
    ) -> Result<Arc<Program>, ProgramError> {
        if let Some(p) = self.programs.lock().get(image) {
            return Ok(p.clone());
        }
        let program = Arc::new(Program::from_blob(code)?);
        let mut programs = self.programs.lock();
        if programs.len() >= MAX_CACHED_PROGRAMS
            && let Some(victim) = programs.keys().next().copied()
        {
            programs.remove(&victim);
        }
        programs.insert(*image, program.clone());
        Ok(program)
    }

    /// How many programs are cached.
    pub fn len(&self) -> usize {
        self.programs.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
