//! A writer for the "newc" cpio format, which the kernel unpacks as an
//! initramfs. Several archives concatenated form one initramfs.

use std::io::{self, Write};

/// Builds an archive in memory; entries are written in the order given.
#[derive(Default)]
pub struct CpioWriter {
    buf: Vec<u8>,
    ino: u32,
}

impl CpioWriter {
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self, name: &str, mode: u32, size: usize) {
        self.ino += 1;
        let namesize = name.len() + 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            size as u32,
            0,
            0,
            0,
            0,
            namesize as u32,
            0,
        ];
        self.buf.extend_from_slice(b"070701");
        for field in fields {
            self.buf
                .extend_from_slice(format!("{field:08X}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    /// A directory; parents must have been added first.
    pub fn dir(&mut self, path: &str) {
        self.header(path.trim_start_matches('/'), 0o040755, 0);
    }

    /// A regular file with `mode` permission bits.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.header(
            path.trim_start_matches('/'),
            0o100000 | (mode & 0o7777),
            data.len(),
        );
        self.buf.extend_from_slice(data);
        self.pad();
    }

    /// A symbolic link at `path` pointing to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.header(path.trim_start_matches('/'), 0o120777, target.len());
        self.buf.extend_from_slice(target.as_bytes());
        self.pad();
    }

    /// Adds every missing parent directory of `path` (tracked by `seen`).
    pub fn parents(&mut self, path: &str, seen: &mut std::collections::BTreeSet<String>) {
        let mut acc = String::new();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            acc.push('/');
            acc.push_str(part);
            if seen.insert(acc.clone()) {
                self.dir(&acc);
            }
        }
    }

    /// Ends the archive and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0);
        while self.buf.len() % 512 != 0 {
            self.buf.push(0);
        }
        self.buf
    }

    /// Ends the archive and writes it out.
    pub fn write_to(self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let mut w = CpioWriter::new();
        w.dir("/bin");
        w.file("/bin/x", 0o755, b"hello");
        let bytes = w.finish();
        assert_eq!(&bytes[..6], b"070701");
        // mode field of the first header is the second field.
        assert_eq!(&bytes[14..22], b"000041ED");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("bin/x\0"));
        assert!(text.contains("hello"));
        assert!(text.contains("TRAILER!!!"));
        assert_eq!(bytes.len() % 512, 0);
        // Every header starts 4-byte aligned.
        for (i, _) in text.match_indices("070701") {
            assert_eq!(i % 4, 0);
        }
    }
}
