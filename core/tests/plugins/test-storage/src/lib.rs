//! An in-memory storage backend: bytes never written read as evicted and count as holding no
//! data, ranges past a file's end are out of range, and writing at offset `u64::MAX` panics (to
//! test poisoning).

use std::sync::Mutex;

use rivulet_core::plugin::{Storage, StorageError, StorageOpen, StorageSpec};

pub struct TestStorage {
    root: std::path::PathBuf,
    files: Mutex<Vec<Vec<Option<u8>>>>,
}

impl StorageOpen for TestStorage {
    fn open(spec: &StorageSpec) -> Result<Self, StorageError> {
        if spec.files.is_empty() {
            return Err(StorageError::Other(
                "test storage needs at least one file".into(),
            ));
        }
        Ok(TestStorage {
            root: spec.root.clone(),
            files: Mutex::new(
                spec.files
                    .iter()
                    .map(|(_, len)| vec![None; *len as usize])
                    .collect(),
            ),
        })
    }
}

impl TestStorage {
    fn span(
        files: &[Vec<Option<u8>>],
        file: usize,
        offset: u64,
        len: usize,
    ) -> Result<std::ops::Range<usize>, StorageError> {
        let out_of_range = || StorageError::OutOfRange {
            file,
            offset,
            len: len as u64,
        };
        let f = files.get(file).ok_or_else(out_of_range)?;
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        match start.checked_add(len) {
            Some(end) if end <= f.len() => Ok(start..end),
            _ => Err(out_of_range()),
        }
    }
}

impl Storage for TestStorage {
    fn write(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        if offset == u64::MAX {
            panic!("test storage told to write at the end of time");
        }
        let mut files = self.files.lock().unwrap();
        let span = Self::span(&files, file, offset, data.len())?;
        for (slot, byte) in files[file][span].iter_mut().zip(data) {
            *slot = Some(*byte);
        }
        Ok(())
    }

    fn read(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        let files = self.files.lock().unwrap();
        let span = Self::span(&files, file, offset, buf.len())?;
        for (out, slot) in buf.iter_mut().zip(&files[file][span]) {
            *out = slot.ok_or(StorageError::Evicted)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        // Reports the root it was opened with, so the test can check the spec crossed intact.
        Err(StorageError::io(
            self.root.join("flush"),
            std::io::Error::from_raw_os_error(30),
        ))
    }

    fn persistent(&self) -> bool {
        true
    }

    fn has_data(&self, file: usize, offset: u64, len: u64) -> bool {
        let files = self.files.lock().unwrap();
        let Ok(span) = Self::span(&files, file, offset, len as usize) else {
            return false;
        };
        files[file][span].iter().all(Option::is_some)
    }
}

rivulet_core::export_storage!(TestStorage, "test-storage", "0.3.0");
