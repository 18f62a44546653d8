//! The digest of the state tables: what two engines, or an engine and its replay, compare.

use crate::json::J;

/// SHA-256 over every state table's canonical rows (the reference's `digest_tables`):
/// rows are written into one buffer hashed a block at a time.
pub struct Digest {
    hasher: sha2::Sha256,
    buffer: Vec<u8>,
}

impl Default for Digest {
    fn default() -> Self {
        use sha2::Digest as _;
        Digest { hasher: sha2::Sha256::new(), buffer: Vec::with_capacity(Self::BLOCK + 4096) }
    }
}

impl Digest {
    const BLOCK: usize = 1 << 20;

    pub fn table(&mut self, table: &str) {
        self.buffer.extend_from_slice(format!("#{table}\n").as_bytes());
    }

    pub fn row(&mut self, row: &J) {
        self.written(|buffer| crate::json::write_canonical(buffer, row));
    }

    /// A row that `write` writes in its canonical form (faster than building it as `J`).
    pub fn written(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.buffer);
        self.line();
    }

    fn line(&mut self) {
        use sha2::Digest as _;
        self.buffer.push(b'\n');
        if self.buffer.len() >= Self::BLOCK {
            self.hasher.update(&self.buffer);
            self.buffer.clear();
        }
    }

    pub fn finish(mut self) -> String {
        use sha2::Digest as _;
        self.hasher.update(&self.buffer);
        self.hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}
