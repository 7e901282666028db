//! Reading whole local files through the streaming readers, in fixed-size chunks.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::gguf::{GgufEvent, GgufHeader, GgufReader};
use super::LoadError;

/// The chunk size of the file readers: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: usize = 1 << 20;

/// Opens `path`; returns the file, its display name and its length.
fn open(path: &Path) -> Result<(File, String, u64), LoadError> {
    let name = path.display().to_string();
    let io = |source| LoadError::Io { file: name.clone(), source };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    Ok((file, name, len))
}

/// Reads `file` in chunks of `chunk_size` bytes, passing each to `feed` until it returns false
/// or the file ends.
pub fn read_chunks<E: From<LoadError>>(
    mut file: impl Read,
    name: &str,
    chunk_size: usize,
    mut feed: impl FnMut(&[u8]) -> Result<bool, E>,
) -> Result<(), E> {
    let mut chunk = vec![0u8; chunk_size.max(1)];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(LoadError::Io { file: name.into(), source }.into()),
        };
        if !feed(&chunk[..n])? {
            return Ok(());
        }
    }
}

/// Streams the GGUF file at `path` through a [`GgufReader`] in `chunk_size` chunks; returns its
/// header once every tensor has been handed to `on_event`.
pub fn read_gguf_file<E: From<LoadError>>(
    path: &Path,
    chunk_size: usize,
    mut on_event: impl FnMut(GgufEvent<'_>) -> Result<(), E>,
) -> Result<GgufHeader, E> {
    let (file, name, len) = open(path)?;
    let mut reader = GgufReader::new(name.clone(), Some(len));
    read_chunks(file, &name, chunk_size, |chunk| reader.feed(chunk, &mut on_event).map(|()| true))?;
    reader.finish(&mut on_event)?;
    Ok(reader.into_header().expect("finish succeeded, so the header was parsed"))
}

/// Reads only the header of the GGUF file at `path`.
pub fn read_gguf_header(path: &Path) -> Result<GgufHeader, LoadError> {
    let (file, name, len) = open(path)?;
    read_gguf_header_from(file, &name, Some(len))
}

/// Reads only the header of the GGUF stream `file` (named `name`, `total` bytes when known),
/// stopping as soon as it is complete.
pub fn read_gguf_header_from(file: impl Read, name: &str, total: Option<u64>) -> Result<GgufHeader, LoadError> {
    let mut reader = GgufReader::new(name, total);
    let ignore = |_: GgufEvent<'_>| Ok::<(), LoadError>(());
    read_chunks(file, name, DEFAULT_CHUNK_SIZE, |chunk| {
        reader.feed(chunk, ignore)?;
        Ok::<bool, LoadError>(reader.header().is_none())
    })?;
    if reader.header().is_none() {
        reader.finish(ignore)?;
    }
    Ok(reader.into_header().expect("the header was parsed, or finish failed"))
}
