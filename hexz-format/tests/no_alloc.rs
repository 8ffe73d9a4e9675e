//! The read path allocates nothing: open an archive held in a static byte
//! slice and read a tensor with stack scratch, under a counting allocator.
//! (`cargo build --no-default-features --features lz4 --target
//! x86_64-unknown-none` separately proves the crate builds without std.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use hexz_format::Archive;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

static ARCHIVE: &[u8] = include_bytes!("../../spec/vectors/gguf-lz4.hxz");
static SOURCE: &[u8] = include_bytes!("../../spec/vectors/gguf-lz4.expected");

#[test]
fn reads_a_tensor_from_a_static_slice_without_allocating() {
    let mut scratch = [0u8; 16 * 1024];
    let mut out = [0u8; 2048];
    let before = ALLOCATIONS.with(|c| c.get());
    let archive = Archive::open(ARCHIVE).expect("open");
    assert!(archive.scratch_size() <= scratch.len());
    let index = archive.find_tensor("blk.0.q8").expect("find");
    let n = archive.read_tensor(index, &mut out, &mut scratch).expect("read");
    let record = archive.manifest_view().tensor(&ARCHIVE, index).unwrap();
    let mut whole = [0u8; 4096];
    archive.read_at(0, &mut whole[..SOURCE.len().min(4096)], &mut scratch).expect("range");
    let after = ALLOCATIONS.with(|c| c.get());
    assert_eq!(after - before, 0, "the read path allocated");
    let start = record.virtual_offset.get() as usize;
    assert_eq!(&out[..n], &SOURCE[start..start + n]);
    assert_eq!(&whole[..SOURCE.len().min(4096)], &SOURCE[..SOURCE.len().min(4096)]);
}
