//! The C ABI on any bytes: open from memory, enumerate tensors and GGUF
//! keys, read every tensor (one by one, then in one hexz_read_tensors call
//! on two threads, which must agree) and a range, ask for block spans, call
//! every getter, read through a hexz_fopen stream.
#![no_main]
use std::ffi::c_char;

use hexz_ffi::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| unsafe {
    let mut archive: *mut hexz_archive = std::ptr::null_mut();
    if hexz_open_memory(data.as_ptr(), data.len(), std::ptr::null(), &mut archive) != ErrorCode::Ok {
        assert!(archive.is_null());
        return;
    }
    let mut info = std::mem::zeroed::<hexz_archive_info>();
    info.struct_size = std::mem::size_of::<hexz_archive_info>();
    assert_eq!(hexz_archive_get_info(archive, &mut info), ErrorCode::Ok);
    let mut count = 0usize;
    hexz_tensor_count(archive, &mut count);
    let mut buf = vec![0u8; 1 << 16];
    for i in 0..count.min(32) {
        let mut t = std::mem::zeroed::<hexz_tensor_info>();
        t.struct_size = std::mem::size_of::<hexz_tensor_info>();
        if hexz_tensor_get_info(archive, i, &mut t) == ErrorCode::Ok {
            let mut index = 0usize;
            assert_eq!(hexz_find_tensor(archive, t.name, &mut index), ErrorCode::Ok);
        }
        let mut got = 0usize;
        hexz_read_tensor(archive, i, buf.as_mut_ptr(), buf.len(), &mut got);
    }
    // The same tensors in one call: each into its own 4 KiB slice.
    let n = count.min(32);
    let mut one_by_one = vec![0u8; n << 12];
    let mut ok = vec![false; n];
    for (i, (dst, ok)) in one_by_one.chunks_mut(1 << 12).zip(&mut ok).enumerate() {
        let mut got = 0usize;
        *ok = hexz_read_tensor(archive, i, dst.as_mut_ptr(), dst.len(), &mut got) == ErrorCode::Ok;
    }
    let mut batch = vec![0u8; n << 12];
    let reads: Vec<hexz_tensor_read> = batch
        .chunks_mut(1 << 12)
        .enumerate()
        .map(|(index, dst)| hexz_tensor_read { index, buf: dst.as_mut_ptr(), buf_len: dst.len() })
        .collect();
    match hexz_read_tensors(archive, reads.as_ptr(), n, 2) {
        ErrorCode::Ok => assert!(ok.iter().all(|&ok| ok) && batch == one_by_one),
        _ => assert!(batch.iter().all(|&b| b == 0)),
    }
    hexz_read_range(archive, 0, buf.as_mut_ptr(), buf.len().min(info.original_size as usize));
    for offset in [0, info.original_size / 2, info.original_size.saturating_sub(1), info.original_size] {
        let (mut start, mut length) = (0u64, 0u64);
        if hexz_block_span(archive, offset, &mut start, &mut length) == ErrorCode::Ok {
            assert!(start <= offset && offset - start < length);
        }
    }
    let mut kvs = 0usize;
    hexz_gguf_kv_count(archive, &mut kvs);
    for i in 0..kvs.min(64) {
        let (mut s, mut n, mut ty) = (std::ptr::null::<c_char>(), 0usize, 0u32);
        hexz_gguf_get_key(archive, i, &mut s, &mut n);
        hexz_gguf_get_type(archive, i, &mut ty);
        hexz_gguf_get_string(archive, i, &mut s, &mut n);
        let (mut u, mut f, mut b) = (0u64, 0f64, false);
        hexz_gguf_get_u64(archive, i, &mut u);
        hexz_gguf_get_f64(archive, i, &mut f);
        hexz_gguf_get_bool(archive, i, &mut b);
        let (mut elem, mut len) = (0u32, 0u64);
        hexz_gguf_get_array_info(archive, i, &mut elem, &mut len);
        let (mut p, mut bytes) = (std::ptr::null(), 0usize);
        hexz_gguf_get_array_data(archive, i, &mut p, &mut bytes);
        hexz_gguf_get_array_string(archive, i, 0, &mut s, &mut n);
    }
    let (mut h, mut hn) = (std::ptr::null(), 0usize);
    hexz_source_header(archive, &mut h, &mut hn);
    // The FILE * stream gives what a range read gives, where that succeeds.
    let mut file = std::ptr::null_mut();
    if hexz_fopen(archive, &mut file) == ErrorCode::Ok {
        let (mut streamed, mut direct) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
        for offset in [0, info.original_size / 3, info.original_size.saturating_sub(100)] {
            assert_eq!(libc::fseeko(file, offset as libc::off_t, libc::SEEK_SET), 0);
            let got = libc::fread(streamed.as_mut_ptr().cast(), 1, streamed.len(), file);
            if libc::ferror(file) == 0 {
                let want = (info.original_size - offset).min(streamed.len() as u64) as usize;
                assert_eq!(got, want);
                if hexz_read_range(archive, offset, direct.as_mut_ptr(), got) == ErrorCode::Ok {
                    assert_eq!(streamed[..got], direct[..got]);
                }
            }
            libc::clearerr(file);
        }
        libc::fclose(file);
    }
    hexz_close(archive);
});
