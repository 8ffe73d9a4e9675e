// Shared by the fuzz targets (included, not a module of its own crate).

/// Open `data` as an archive and read everything a user could read.
/// Returns the decoded source when every read succeeded.
#[allow(dead_code)]
pub fn exercise(data: &[u8]) -> Option<Vec<u8>> {
    let report = hexz_format::verify::verify(data, true, &|_| {});
    let archive = hexz_format::Archive::open(data).ok()?;
    // Cap what a fuzz input may make us allocate for the whole-file read.
    let size = archive.virtual_size();
    let whole = if size <= 1 << 24 { archive.read_vec(0, size).ok() } else { None };
    if let Ok(manifest) = archive.manifest() {
        let mut scratch = archive.new_scratch().ok()?;
        for t in manifest.tensors.iter().take(64) {
            if t.length <= 1 << 22 {
                let mut buf = vec![0u8; t.length as usize];
                let r = archive.read_at(t.offset, &mut buf, &mut scratch);
                if let (Ok(()), Some(w)) = (r, &whole) {
                    assert_eq!(&w[t.offset as usize..(t.offset + t.length) as usize], &buf[..]);
                }
            }
        }
        let _ = archive.gguf_header();
    }
    if whole.is_some() && report.is_ok() {
        // Deep verify passed: the decoded bytes hash to the recorded source hash.
        assert_eq!(*blake3::hash(whole.as_ref()?).as_bytes(), archive.source_hash());
    }
    whole
}
