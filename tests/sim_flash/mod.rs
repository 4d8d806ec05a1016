//! A simulated NOR flash for the flash store and log tests: it enforces what the
//! `NorFlash` trait demands and loses power at a chosen moment.
#![allow(dead_code)]

use harp::embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// How an erase cut short leaves its sector.
#[derive(Clone, Copy, Debug)]
pub enum TornErase {
    /// Erased up to the cut, the word at the cut random, the rest as it was.
    Prefix,
    /// Every byte of the sector random ("contents undefined", the trait's words).
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimError {
    /// The power is off (the cut happened during this or an earlier operation).
    PowerLost,
    /// A driver failure: the write reported an error (what landed depends on the test).
    Failed,
}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

/// NOR flash of `SIZE` bytes with a write unit `W` and an erase unit `E`, that enforces
/// what the `NorFlash` trait promises and demands: aligned, in-bounds operations, erased
/// bytes read 0xFF, and no word written twice between erases (a store that did so would
/// make this panic). It loses power after `budget` units of work: one per byte written,
/// one per word erased.
pub struct SimFlash<const W: usize, const E: usize> {
    pub mem: Vec<u8>,
    /// Words written since their last erase.
    pub written: Vec<bool>,
    pub budget: Option<u64>,
    pub torn_erase: TornErase,
    pub powered: bool,
    /// Work done so far (to find every moment of a run).
    pub work: u64,
    pub erases: u64,
    /// Erases begun, per erase unit.
    pub erases_per_unit: Vec<u64>,
    /// The range of the last erase begun.
    pub last_erase: Option<(usize, usize)>,
    pub rng: u64,
    /// The next write fails: `Some(n)` lands its first `n` bytes (all of them if larger).
    pub fail_next_write: Option<usize>,
}

impl<const W: usize, const E: usize> SimFlash<W, E> {
    pub fn new(size: usize) -> Self {
        SimFlash {
            mem: vec![0xFF; size],
            written: vec![false; size / W],
            budget: None,
            torn_erase: TornErase::Prefix,
            powered: true,
            work: 0,
            erases: 0,
            erases_per_unit: vec![0; size / E],
            last_erase: None,
            rng: 0x9E37_79B9_7F4A_7C15,
            fail_next_write: None,
        }
    }

    fn random_byte(&mut self) -> u8 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 24) as u8
    }

    /// Spends one unit of work; false once the budget is gone (the power is then off).
    fn spend(&mut self) -> bool {
        if self.budget == Some(self.work) {
            self.powered = false;
            return false;
        }
        self.work += 1;
        true
    }

    /// The power comes back (a restart) with no cut planned.
    pub fn power_on(&mut self) {
        self.powered = true;
        self.budget = None;
    }
}

impl<const W: usize, const E: usize> ErrorType for SimFlash<W, E> {
    type Error = SimError;
}

impl<const W: usize, const E: usize> ReadNorFlash for SimFlash<W, E> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        if !self.powered {
            return Err(SimError::PowerLost);
        }
        let at = offset as usize;
        bytes.copy_from_slice(&self.mem[at..at + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl<const W: usize, const E: usize> NorFlash for SimFlash<W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        let (from, to) = (from as usize, to as usize);
        assert!(
            from.is_multiple_of(E) && to.is_multiple_of(E) && from <= to && to <= self.mem.len()
        );
        if !self.powered {
            return Err(SimError::PowerLost);
        }
        self.erases += 1;
        for unit in from / E..to / E {
            self.erases_per_unit[unit] += 1;
        }
        self.last_erase = Some((from, to));
        for word in (from..to).step_by(W) {
            if !self.spend() {
                match self.torn_erase {
                    TornErase::Prefix => {
                        for i in word..word + W {
                            self.mem[i] = self.random_byte();
                        }
                    }
                    TornErase::Random => {
                        for i in from..to {
                            self.mem[i] = self.random_byte();
                        }
                    }
                }
                // Undefined contents: the words may have been erased or not.
                for w in from / W..to / W {
                    self.written[w] = true;
                }
                return Err(SimError::PowerLost);
            }
            self.mem[word..word + W].fill(0xFF);
            self.written[word / W] = false;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        let at = offset as usize;
        assert!(at.is_multiple_of(W) && bytes.len().is_multiple_of(W), "unaligned write at {at}");
        assert!(at + bytes.len() <= self.mem.len(), "write past the end");
        if !self.powered {
            return Err(SimError::PowerLost);
        }
        for word in (at..at + bytes.len()).step_by(W) {
            assert!(!self.written[word / W], "word at {word} written twice without an erase");
            self.written[word / W] = true;
        }
        let failing = self.fail_next_write.take();
        let lands = failing.map_or(bytes.len(), |n| n.min(bytes.len()));
        for (i, &b) in bytes.iter().enumerate().take(lands) {
            if !self.spend() {
                // The word being written is undefined; the rest is untouched.
                let word = (at + i) / W * W;
                for j in word..word + W {
                    self.mem[j] = self.random_byte();
                }
                return Err(SimError::PowerLost);
            }
            self.mem[at + i] = b;
        }
        if failing.is_some() {
            return Err(SimError::Failed);
        }
        Ok(())
    }
}
