//! Read one tensor and one byte range of an archive from Rust, and count
//! the reads it took (docs/how-to/rust.md runs this).
//!
//! usage: cargo run --release -p hexz-io --example read_tensor -- ARCHIVE.hxz TENSOR

use std::path::Path;

use hexz_io::{OpenOptions, Reader};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, archive, name] = args.as_slice() else {
        return Err("usage: read_tensor ARCHIVE.hxz TENSOR".into());
    };
    // Opens the archive and its parent chain (parents found beside it, or
    // in OpenOptions::search), reading the header and one tail piece.
    let reader = Reader::open(Path::new(archive), &OpenOptions::default())?;
    // The tensor table is in memory: no I/O for the lookup.
    let (index, info) = reader.tensor(name).ok_or_else(|| format!("{archive}: no tensor {name}"))?;
    println!("{name}: {} {:?}, {} bytes at offset {}", info.dtype, info.shape, info.length, info.offset);
    // Its index pages once, its blocks in one read, decoded into `buf`.
    let mut buf = vec![0u8; usize::try_from(info.length)?];
    reader.read_tensor(index, &mut buf)?;
    // Any byte range of the original file, e.g. the start of the tensor.
    let mut head = [0u8; 16];
    reader.read_at(info.offset, &mut head)?;
    assert_eq!(head[..], buf[..16]);
    println!("first bytes {head:02x?}");
    Ok(())
}
