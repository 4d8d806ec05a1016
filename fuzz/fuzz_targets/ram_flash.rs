//! RAM standing in for NOR flash in the flash fuzz targets: writes can only clear bits,
//! erases set them; 1-byte reads, 4-byte writes, `ERASE`-byte sectors.

use harp::embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};

pub struct RamFlash<const SIZE: usize, const ERASE: usize>(pub [u8; SIZE]);

impl<const SIZE: usize, const ERASE: usize> RamFlash<SIZE, ERASE> {
    /// The flash holding `data` from offset 0, erased after it.
    pub fn with(data: &[u8]) -> Self {
        let mut flash = RamFlash([0xFF; SIZE]);
        let image = data.len().min(SIZE);
        flash.0[..image].copy_from_slice(&data[..image]);
        flash
    }
}

impl<const SIZE: usize, const ERASE: usize> ErrorType for RamFlash<SIZE, ERASE> {
    type Error = NorFlashErrorKind;
}

impl<const SIZE: usize, const ERASE: usize> ReadNorFlash for RamFlash<SIZE, ERASE> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, at: u32, out: &mut [u8]) -> Result<(), Self::Error> {
        let at = at as usize;
        out.copy_from_slice(&self.0[at..at + out.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        SIZE
    }
}

impl<const SIZE: usize, const ERASE: usize> NorFlash for RamFlash<SIZE, ERASE> {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.0[from as usize..to as usize].fill(0xFF);
        Ok(())
    }

    fn write(&mut self, at: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = at as usize;
        for (cell, b) in self.0[at..at + bytes.len()].iter_mut().zip(bytes) {
            *cell &= b;
        }
        Ok(())
    }
}
