// Package hexz reads .hxz archives of ML model checkpoints (safetensors,
// GGUF, whole checkpoint folders) through libhexz, the Hexz C ABI: any
// tensor or byte range is decoded on demand, straight into the caller's
// slice, without unpacking the rest.
//
//	a, err := hexz.Open("model.hxz")
//	if err != nil { ... }
//	defer a.Close()
//	t, _ := a.Tensor("token_embd.weight")
//	buf := make([]byte, t.Length)
//	_, err = a.ReadTensor(t.Name, buf)
//	http.ServeContent(w, r, "model.gguf", time.Time{}, a.NewReader())
//
// An *Archive is safe for concurrent use by many goroutines. The package
// builds against an installed libhexz-remote found by pkg-config, so that
// OpenURL reads s3:// and http(s):// URLs; with the build tag hexz_local it
// links libhexz instead, which has no HTTP or TLS stack (see README.md).
package hexz

/*
#include <stdlib.h>
#include <string.h>
#include <hexz.h>
*/
import "C"

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// call runs one libhexz call and, when it fails, takes hexz_last_error()
// on the same OS thread (the message is per thread).
func call(f func() C.hexz_status) *Error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := f()
	if st == C.HEXZ_STATUS_OK {
		return nil
	}
	return &Error{Status: Status(st), Msg: C.GoString(C.hexz_last_error())}
}

// errOrNil turns a nil *Error into a nil error interface.
func errOrNil(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

// Version is the libhexz version string ("0.4.0").
func Version() string { return C.GoString(C.hexz_version_string()) }

// SourceFormat is what an archive holds.
type SourceFormat uint32

const (
	SourceRaw         SourceFormat = C.HEXZ_SOURCE_RAW
	SourceSafetensors SourceFormat = C.HEXZ_SOURCE_SAFETENSORS
	SourceGGUF        SourceFormat = C.HEXZ_SOURCE_GGUF
	SourceFolder      SourceFormat = C.HEXZ_SOURCE_FOLDER
)

func (f SourceFormat) String() string {
	switch f {
	case SourceRaw:
		return "raw"
	case SourceSafetensors:
		return "safetensors"
	case SourceGGUF:
		return "gguf"
	case SourceFolder:
		return "folder"
	}
	return fmt.Sprintf("SourceFormat(%d)", uint32(f))
}

// NoGGMLType is TensorInfo.GGMLType for tensors that do not come from GGUF.
const NoGGMLType = uint32(C.HEXZ_NO_GGML_TYPE)

// TensorInfo describes one tensor.
type TensorInfo struct {
	Name string
	// DType as the source names it: "F32", "BF16" (safetensors) or the GGML
	// type name "Q4_K", "F16", ... (GGUF).
	DType string
	// GGMLType is the GGML type id of GGUF tensors, NoGGMLType otherwise.
	GGMLType uint32
	// Shape as the source lists it (GGUF: ne[0] first).
	Shape []uint64
	// Offset of the tensor's bytes in the original file; Length their count.
	Offset int64
	Length int64
	// Storage: "stored", "deduplicated", "parent", "delta" or "empty".
	Storage string
	index   int
}

// FileInfo describes one entry of a folder archive.
type FileInfo struct {
	Path string
	// Dir is true for a directory (no bytes).
	Dir bool
	// SourceFormat says what the file is.
	SourceFormat SourceFormat
	// Offset of the file's bytes in the archive's virtual space (what
	// ReadAt reads and tensor offsets point into); Length their count.
	Offset  int64
	Length  int64
	Mode    fs.FileMode
	MtimeNs int64
}

// Info is what an archive is.
type Info struct {
	SourceFormat SourceFormat
	// Size of the original file (the virtual space ReadAt reads).
	Size int64
	// ArchiveSize of the .hxz file.
	ArchiveSize int64
	Blocks      int64
	// Identity is the archive's BLAKE3 identity (hex), which children name.
	Identity string
	// ParentIdentity is the identity of the parent it was stored against,
	// or "" when it has none.
	ParentIdentity string
	// SourceHash is the BLAKE3 of the original file (hex).
	SourceHash string
}

// OpenOptions tune Open. The zero value is the default.
type OpenOptions struct {
	// ParentDir is an extra folder to look for parent archives in.
	ParentDir string
	// ReadSlots bounds the reads that run at once (0: 4, at most 256).
	ReadSlots int
	// SkipHashCheck turns off the BLAKE3 check of decoded blocks.
	SkipHashCheck bool
	// MemoryBudget caps read scratch memory in bytes (0: 256 MiB).
	MemoryBudget uint64
	// MaxMetadataBytes caps directory, manifest and header memory (0: 256 MiB).
	MaxMetadataBytes uint64
	// TrustedKeys are minisign public keys (a .pub file's text, or its
	// base64 line) the archive must be signed by, any one of them. When
	// set, an archive that is unsigned, signed by another key or changed
	// since it was signed is refused at open with ErrSignature, before any
	// byte is returned; what is read after is authenticated by the
	// signature (format 1.4, libhexz 1.2).
	TrustedKeys []string
	// IdentityFiles are paths of age X25519 identity files
	// (AGE-SECRET-KEY-1..., as age-keygen writes them) that may open an
	// encrypted archive and its parents (format 1.5, libhexz 1.3).
	IdentityFiles []string
	// Passphrase may open an encrypted archive: its bytes, exactly. It is
	// copied into C memory for the open only and wiped after it. An
	// encrypted archive opened with no key is refused with ErrKey (Status
	// KEY_REQUIRED), with keys none of which opens it, ErrKey (WRONG_KEY).
	Passphrase []byte
}

// Archive is an open .hxz archive with its parent chain. Close it when
// done; a finalizer closes a forgotten one, as a safety net only.
type Archive struct {
	mu      sync.RWMutex // read-held by every call, write-held by Close
	h       *C.hexz_archive
	path    string
	info    Info
	tensors []TensorInfo
	byName  map[string][]int // every tensor of each name (one per file of a folder holding it)
}

// cOptions fills the C open options from o (nil: defaults); C strings it
// allocates are appended to frees, for the caller to free after the call.
func cOptions(o *OpenOptions, c *C.hexz_open_options, frees *[]unsafe.Pointer) *Error {
	c.struct_size = C.sizeof_hexz_open_options
	if o == nil {
		return nil
	}
	if o.ReadSlots < 0 || o.ReadSlots > 256 {
		return &Error{Status: C.HEXZ_STATUS_INVALID_ARGUMENT, Msg: "ReadSlots must be 0..256"}
	}
	c.read_slots = C.uint32_t(o.ReadSlots)
	if o.SkipHashCheck {
		c.skip_hash_check = 1
	}
	c.memory_budget = C.uint64_t(o.MemoryBudget)
	c.max_metadata_bytes = C.uint64_t(o.MaxMetadataBytes)
	if o.ParentDir != "" {
		dir := C.CString(o.ParentDir)
		*frees = append(*frees, unsafe.Pointer(dir))
		c.parent_dir = dir
	}
	if len(o.TrustedKeys) > 0 {
		// C memory: the struct may be Go memory, which must hold no Go pointers.
		n := len(o.TrustedKeys)
		arr := (*[1 << 20]*C.char)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		*frees = append(*frees, unsafe.Pointer(arr))
		for i, k := range o.TrustedKeys {
			ck := C.CString(k)
			*frees = append(*frees, unsafe.Pointer(ck))
			arr[i] = ck
		}
		c.trusted_keys = (**C.char)(unsafe.Pointer(arr))
		c.trusted_key_count = C.size_t(n)
	}
	if len(o.IdentityFiles) > 0 {
		n := len(o.IdentityFiles)
		arr := (*[1 << 20]*C.char)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		*frees = append(*frees, unsafe.Pointer(arr))
		for i, p := range o.IdentityFiles {
			cp := C.CString(p)
			*frees = append(*frees, unsafe.Pointer(cp))
			arr[i] = cp
		}
		c.identity_files = (**C.char)(unsafe.Pointer(arr))
		c.identity_file_count = C.size_t(n)
	}
	if len(o.Passphrase) > 0 {
		// C memory, wiped before freeAll frees it.
		p := C.CBytes(o.Passphrase)
		wipeOnFree.Store(p, C.size_t(len(o.Passphrase)))
		*frees = append(*frees, p)
		c.passphrase = (*C.uint8_t)(p)
		c.passphrase_len = C.size_t(len(o.Passphrase))
	}
	return nil
}

// wipeOnFree holds the C copies of passphrases (pointer to length):
// freeAll zeroes them before freeing.
var wipeOnFree sync.Map

func freeAll(frees []unsafe.Pointer) {
	for _, p := range frees {
		if n, ok := wipeOnFree.LoadAndDelete(p); ok {
			C.memset(p, 0, n.(C.size_t))
		}
		C.free(p)
	}
}

// opened wraps a new handle: its tables loaded into Go, a finalizer set.
func opened(h *C.hexz_archive, path string) (*Archive, error) {
	a := &Archive{h: h, path: path}
	if err := a.load(); err != nil {
		C.hexz_close(h)
		return nil, err
	}
	runtime.SetFinalizer(a, (*Archive).Close)
	return a, nil
}

// Open opens the archive at path and its parent chain (parents are found
// beside it by their recorded path).
func Open(path string) (*Archive, error) { return OpenWithOptions(path, nil) }

// OpenWithOptions opens the archive at path with options (nil: defaults).
func OpenWithOptions(path string, o *OpenOptions) (*Archive, error) {
	var opts C.hexz_open_options
	var frees []unsafe.Pointer
	defer func() { freeAll(frees) }()
	if e := cOptions(o, &opts, &frees); e != nil {
		return nil, e
	}
	cpath := C.CString(path)
	frees = append(frees, unsafe.Pointer(cpath))
	var h *C.hexz_archive
	if e := call(func() C.hexz_status { return C.hexz_open_path(cpath, &opts, &h) }); e != nil {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, missing(e, path)
		}
		return nil, e
	}
	return opened(h, path)
}

// URLOptions tune OpenURL. The zero value is the default; S3 credentials
// come from the standard AWS variables (AWS_ACCESS_KEY_ID, ...).
type URLOptions struct {
	// Endpoint of an S3-compatible server ("http://127.0.0.1:9000"); "":
	// AWS_ENDPOINT_URL, else AWS.
	Endpoint string
	// Region; "": AWS_REGION, else us-east-1.
	Region string
	// CacheBytes of fetched ranges kept for repeated reads (0: 64 MiB).
	CacheBytes uint64
	// Stall timeout (the longest wait for a response to start or for its
	// next bytes) and connect timeout (0: 15 s and 10 s).
	Timeout, ConnectTimeout time.Duration
	// ParentLocation is an extra URL prefix or folder to look for parents in.
	ParentLocation string
	// Open carries the options of Open (read slots, hash checks, caps).
	Open *OpenOptions
	// CacheDir is the folder of the persistent block cache ("": HEXZ_CACHE_DIR,
	// else ~/.cache/hexz/blocks; "off": none); CacheMaxBytes its cap (0:
	// HEXZ_CACHE_MAX_BYTES, else 10 GiB).
	CacheDir      string
	CacheMaxBytes uint64
}

// OpenURL opens the archive at url (s3://bucket/key, http://, https://, or
// a local path) with its parent chain, reading on demand: opening costs
// two requests, a tensor its index pages and blocks.
func OpenURL(url string, o *URLOptions) (*Archive, error) {
	var opts C.hexz_url_options
	opts.struct_size = C.sizeof_hexz_url_options
	var frees []unsafe.Pointer
	defer func() { freeAll(frees) }()
	cstr := func(s string) *C.char {
		if s == "" {
			return nil
		}
		c := C.CString(s)
		frees = append(frees, unsafe.Pointer(c))
		return c
	}
	if o != nil {
		opts.endpoint = cstr(o.Endpoint)
		opts.region = cstr(o.Region)
		opts.cache_bytes = C.uint64_t(o.CacheBytes)
		opts.timeout_ms = C.uint32_t(o.Timeout.Milliseconds())
		opts.connect_timeout_ms = C.uint32_t(o.ConnectTimeout.Milliseconds())
		opts.parent_location = cstr(o.ParentLocation)
		opts.cache_dir = cstr(o.CacheDir)
		opts.cache_max_bytes = C.uint64_t(o.CacheMaxBytes)
		if o.Open != nil {
			// C memory: cgo forbids passing Go memory that holds C pointers.
			p := (*C.hexz_open_options)(C.calloc(1, C.sizeof_hexz_open_options))
			frees = append(frees, unsafe.Pointer(p))
			if e := cOptions(o.Open, p, &frees); e != nil {
				return nil, e
			}
			opts.open = p
		}
	}
	curl := cstr(url)
	if curl == nil {
		return nil, &Error{Status: C.HEXZ_STATUS_INVALID_ARGUMENT, Msg: "empty URL"}
	}
	var h *C.hexz_archive
	if e := call(func() C.hexz_status { return C.hexz_open_url(curl, &opts, &h) }); e != nil {
		return nil, e
	}
	return opened(h, url)
}

var storageNames = []string{"stored", "deduplicated", "parent", "delta", "empty"}

// load reads the archive's info and tensor table into Go memory.
func (a *Archive) load() error {
	ci := C.hexz_archive_info{struct_size: C.sizeof_hexz_archive_info}
	if e := call(func() C.hexz_status { return C.hexz_archive_get_info(a.h, &ci) }); e != nil {
		return e
	}
	a.info = Info{
		SourceFormat: SourceFormat(ci.source_format),
		Size:         int64(ci.original_size),
		ArchiveSize:  int64(ci.archive_size),
		Blocks:       int64(ci.block_count),
		Identity:     hexBytes(ci.identity[:]),
		SourceHash:   hexBytes(ci.source_blake3[:]),
	}
	if ci.has_parent != 0 {
		a.info.ParentIdentity = hexBytes(ci.parent_identity[:])
	}
	var n C.size_t
	if e := call(func() C.hexz_status { return C.hexz_tensor_count(a.h, &n) }); e != nil {
		return e
	}
	a.tensors = make([]TensorInfo, 0, int(n))
	a.byName = make(map[string][]int, int(n))
	for i := 0; i < int(n); i++ {
		t := C.hexz_tensor_info{struct_size: C.sizeof_hexz_tensor_info}
		if e := call(func() C.hexz_status { return C.hexz_tensor_get_info(a.h, C.size_t(i), &t) }); e != nil {
			return e
		}
		shape := make([]uint64, int(t.n_dims))
		if t.n_dims > 0 {
			copy(shape, unsafe.Slice((*uint64)(unsafe.Pointer(t.dims)), int(t.n_dims)))
		}
		storage := "unknown"
		if int(t.storage_kind) < len(storageNames) {
			storage = storageNames[t.storage_kind]
		}
		info := TensorInfo{
			Name:     C.GoStringN(t.name, C.int(t.name_len)),
			DType:    C.GoStringN(t.dtype, C.int(t.dtype_len)),
			GGMLType: uint32(t.ggml_type),
			Shape:    shape,
			Offset:   int64(t.offset),
			Length:   int64(t.length),
			Storage:  storage,
			index:    i,
		}
		a.byName[info.Name] = append(a.byName[info.Name], i)
		a.tensors = append(a.tensors, info)
	}
	return nil
}

func hexBytes(b []C.uint8_t) string {
	out := make([]byte, len(b))
	for i, v := range b {
		out[i] = byte(v)
	}
	return hex.EncodeToString(out)
}

// Close releases the archive. It is idempotent and waits for reads in
// flight on other goroutines; later calls fail with ErrClosed.
func (a *Archive) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.h != nil {
		C.hexz_close(a.h)
		a.h = nil
		runtime.SetFinalizer(a, nil)
	}
	return nil
}

// handle returns the live handle with the read lock held; the caller
// must call a.mu.RUnlock.
func (a *Archive) handle() (*C.hexz_archive, error) {
	a.mu.RLock()
	if a.h == nil {
		a.mu.RUnlock()
		return nil, &Error{Status: C.HEXZ_STATUS_INVALID_ARGUMENT, Msg: a.path + ": archive is closed", Err: ErrClosed}
	}
	return a.h, nil
}

// Path is the path the archive was opened from.
func (a *Archive) Path() string { return a.path }

// Info describes the archive.
func (a *Archive) Info() Info { return a.info }

// Size is the length of the original file: the range ReadAt reads.
func (a *Archive) Size() int64 { return a.info.Size }

// Tensors lists every tensor in file order (a copy).
func (a *Archive) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(a.tensors))
	copy(out, a.tensors)
	return out
}

// Tensor describes the tensor called name, when one tensor has that
// name. In a folder archive several files may hold the same names (a
// training run's checkpoint-500/ and checkpoint-1000/): TensorInFile
// tells them apart.
func (a *Archive) Tensor(name string) (TensorInfo, bool) {
	found := a.byName[name]
	if len(found) != 1 {
		return TensorInfo{}, false
	}
	return a.tensors[found[0]], true
}

// TensorInFile describes the tensor called name in the file at path file
// (as Files lists it) of a folder archive; file "" looks name up in the
// whole archive, where a name several files hold is an error that lists
// them (Status InvalidArgument).
func (a *Archive) TensorInFile(file, name string) (TensorInfo, error) {
	if file == "" {
		if t, ok := a.Tensor(name); ok {
			return t, nil
		}
	}
	h, err := a.handle()
	if err != nil {
		return TensorInfo{}, err
	}
	defer a.mu.RUnlock()
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var cfile *C.char
	if file != "" {
		cfile = C.CString(file)
		defer C.free(unsafe.Pointer(cfile))
	}
	var index C.size_t
	if e := call(func() C.hexz_status { return C.hexz_tensor_find_in_file(h, cfile, cname, &index) }); e != nil {
		return TensorInfo{}, e
	}
	if int(index) >= len(a.tensors) {
		return TensorInfo{}, &Error{Status: C.HEXZ_STATUS_INVALID_ARGUMENT, Msg: "tensor index out of range"}
	}
	return a.tensors[int(index)], nil
}

// ReadAt reads len(p) bytes of the original file at off (io.ReaderAt):
// decoded straight into p. Reading past the end returns the bytes there
// are and io.EOF.
func (a *Archive) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &Error{Status: C.HEXZ_STATUS_INVALID_ARGUMENT, Msg: "negative offset"}
	}
	if off >= a.info.Size {
		return 0, io.EOF
	}
	n := len(p)
	var eof error
	if rest := a.info.Size - off; int64(n) > rest {
		n, eof = int(rest), io.EOF
	}
	if n == 0 {
		return 0, eof
	}
	h, err := a.handle()
	if err != nil {
		return 0, err
	}
	defer a.mu.RUnlock()
	buf := (*C.uint8_t)(unsafe.Pointer(&p[0]))
	if e := call(func() C.hexz_status { return C.hexz_read_range(h, C.uint64_t(off), buf, C.size_t(n)) }); e != nil {
		return 0, e
	}
	return n, eof
}

// BlockSpan returns the block holding byte off of the original file: its
// start and length. A read decodes every block it touches whole, so
// goroutines that split a large tensor between them should cut their pieces
// at block ends; then no block is decoded twice.
func (a *Archive) BlockSpan(off int64) (start, length int64, err error) {
	if off < 0 {
		return 0, 0, &Error{Status: C.HEXZ_STATUS_INVALID_ARGUMENT, Msg: "negative offset"}
	}
	h, err := a.handle()
	if err != nil {
		return 0, 0, err
	}
	defer a.mu.RUnlock()
	var s, l C.uint64_t
	if e := call(func() C.hexz_status { return C.hexz_block_span(h, C.uint64_t(off), &s, &l) }); e != nil {
		return 0, 0, e
	}
	return int64(s), int64(l), nil
}

// NewReader reads the original file from the start: an io.Reader and
// io.Seeker (for io.Copy, http.ServeContent) over ReadAt.
func (a *Archive) NewReader() *io.SectionReader { return io.NewSectionReader(a, 0, a.info.Size) }

// ReadTensor reads tensor name into the start of dst and returns its
// length. A dst shorter than the tensor gives an error matching
// ErrShortBuffer whose Need is the length. A name several files of a
// folder archive hold is an error: ReadTensorInFile names the file.
func (a *Archive) ReadTensor(name string, dst []byte) (int, error) {
	return a.ReadTensorInFile("", name, dst)
}

// ReadTensorInFile reads tensor name of the file at path file of a folder
// archive (file "": as ReadTensor) into the start of dst.
func (a *Archive) ReadTensorInFile(file, name string, dst []byte) (int, error) {
	if len(a.byName[name]) == 0 {
		return 0, &Error{Status: C.HEXZ_STATUS_NOT_FOUND, Msg: fmt.Sprintf("%s: no tensor named %q", a.path, name)}
	}
	t, err := a.TensorInFile(file, name)
	if err != nil {
		return 0, err
	}
	if int64(len(dst)) < t.Length {
		return 0, shortBuffer(int(t.Length), len(dst), fmt.Sprintf("%s: tensor %q", a.path, name))
	}
	if t.Length == 0 {
		return 0, nil
	}
	h, err := a.handle()
	if err != nil {
		return 0, err
	}
	defer a.mu.RUnlock()
	var got C.size_t
	buf := (*C.uint8_t)(unsafe.Pointer(&dst[0]))
	if e := call(func() C.hexz_status {
		return C.hexz_read_tensor(h, C.size_t(t.index), buf, C.size_t(len(dst)), &got)
	}); e != nil {
		return 0, e
	}
	return int(got), nil
}

// Files lists a folder archive's files and directories, sorted by path
// (empty for a single-file archive).
func (a *Archive) Files() ([]FileInfo, error) {
	h, err := a.handle()
	if err != nil {
		return nil, err
	}
	defer a.mu.RUnlock()
	var n C.size_t
	if e := call(func() C.hexz_status { return C.hexz_file_count(h, &n) }); e != nil {
		return nil, e
	}
	out := make([]FileInfo, 0, int(n))
	for i := 0; i < int(n); i++ {
		f := C.hexz_file_info{struct_size: C.sizeof_hexz_file_info}
		if e := call(func() C.hexz_status { return C.hexz_file_get_info(h, C.size_t(i), &f) }); e != nil {
			return nil, e
		}
		out = append(out, FileInfo{
			Path:         C.GoStringN(f.path, C.int(f.path_len)),
			Dir:          f.kind == C.HEXZ_FILE_DIRECTORY,
			SourceFormat: SourceFormat(f.source_format),
			Offset:       int64(f.offset),
			Length:       int64(f.length),
			Mode:         fs.FileMode(f.mode & 0o7777),
			MtimeNs:      int64(f.mtime_ns),
		})
	}
	return out, nil
}

// SourceHeader is the original file's own header, verbatim (safetensors:
// the 8-byte length and JSON; GGUF: everything before the tensor data).
func (a *Archive) SourceHeader() ([]byte, error) {
	h, err := a.handle()
	if err != nil {
		return nil, err
	}
	defer a.mu.RUnlock()
	var data *C.uint8_t
	var n C.size_t
	if e := call(func() C.hexz_status { return C.hexz_source_header(h, &data, &n) }); e != nil {
		return nil, e
	}
	if n == 0 {
		return nil, nil
	}
	return C.GoBytes(unsafe.Pointer(data), C.int(n)), nil
}

// UserMetadata is the metadata given when the archive was stored (`hexz
// store --metadata`); JSON values (KEY:=JSON) as their JSON text.
func (a *Archive) UserMetadata() (map[string]string, error) {
	h, err := a.handle()
	if err != nil {
		return nil, err
	}
	defer a.mu.RUnlock()
	var n C.size_t
	if e := call(func() C.hexz_status { return C.hexz_metadata_count(h, &n) }); e != nil {
		return nil, e
	}
	out := make(map[string]string, int(n))
	for i := 0; i < int(n); i++ {
		var key, value *C.char
		var keyLen, valueLen C.size_t
		if e := call(func() C.hexz_status {
			return C.hexz_metadata_get(h, C.size_t(i), &key, &keyLen, &value, &valueLen, nil)
		}); e != nil {
			return nil, e
		}
		out[C.GoStringN(key, C.int(keyLen))] = C.GoStringN(value, C.int(valueLen))
	}
	return out, nil
}

// Metadata merges the source's metadata (safetensors __metadata__; GGUF
// keys whose values are strings or numbers, formatted as text; see GGUF
// for every key typed) with the user metadata, which wins on a clash.
func (a *Archive) Metadata() (map[string]string, error) {
	out := map[string]string{}
	switch a.info.SourceFormat {
	case SourceSafetensors:
		header, err := a.SourceHeader()
		if err != nil {
			return nil, err
		}
		if len(header) >= 8 {
			var doc struct {
				Meta map[string]string `json:"__metadata__"`
			}
			if err := json.Unmarshal(header[8:], &doc); err != nil {
				return nil, &Error{Status: C.HEXZ_STATUS_SOURCE_FORMAT, Msg: a.path + ": safetensors header: " + err.Error()}
			}
			for k, v := range doc.Meta {
				out[k] = v
			}
		}
	case SourceGGUF:
		g, err := a.GGUF()
		if err != nil {
			return nil, err
		}
		for _, kv := range g.KV {
			if kv.Type != GGUFTypeArray {
				out[kv.Key] = fmt.Sprint(kv.Value)
			}
		}
	}
	user, err := a.UserMetadata()
	if err != nil {
		return nil, err
	}
	for k, v := range user {
		out[k] = v
	}
	return out, nil
}

// Report is what Verify found.
type Report struct {
	// OK is true when no problem was found.
	OK bool
	// Problems is how many were found; Message names the first.
	Problems int
	Message  string
}

// Verify checks the archive at path and its parent chain: the structure,
// and with deep every block's BLAKE3 and the whole file's. Problems are in
// the Report; the error is for an archive that cannot be opened at all.
func Verify(path string, deep bool) (Report, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var problems C.size_t
	e := call(func() C.hexz_status { return C.hexz_verify(cpath, C.bool(deep), &problems) })
	switch {
	case e == nil:
		return Report{OK: true}, nil
	case e.Status == C.HEXZ_STATUS_VERIFY_FAILED:
		return Report{Problems: int(problems), Message: e.Msg}, nil
	default:
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return Report{}, missing(e, path)
		}
		return Report{}, e
	}
}

// Compression for Store.
type Compression uint32

const (
	Zstd Compression = C.HEXZ_COMPRESSION_ZSTD
	LZ4  Compression = C.HEXZ_COMPRESSION_LZ4
	None Compression = C.HEXZ_COMPRESSION_NONE
)

// StoreOptions tune Store. The zero value is the default: zstd at the
// default levels, 1 MiB blocks, one thread per core, replace dst.
type StoreOptions struct {
	Compression Compression
	// Level is the zstd level for every block (0: 3 plain, 1 numeric).
	Level int
	// BlockSize in bytes (0: 1 MiB).
	BlockSize int
	Threads   int
	// Base is an archive to store against: its blocks are referenced and
	// changed tensors stored as deltas.
	Base string
	// ParentDir is an extra folder to look for the base's parents in.
	ParentDir string
	// NoClobber refuses an existing dst.
	NoClobber bool
}

// StoreReport is what Store wrote.
type StoreReport struct {
	SourceSize, ArchiveSize             int64
	Blocks, DeduplicatedBlocks, Tensors int64
	ParentBlocks, DeltaBlocks           int64
}

// Store archives the file or folder src as dst (as `hexz store`). dst
// appears only when whole.
func Store(src, dst string, o *StoreOptions) (StoreReport, error) {
	cdst := C.CString(dst)
	defer C.free(unsafe.Pointer(cdst))
	return store(src, cdst, nil, o)
}

// StoreURL archives the file src to url (s3://bucket/key.hxz) by a
// multipart upload; the object appears only when the archive is whole.
// Endpoint, region and credentials come from the standard AWS variables.
// Needs libhexz-remote (the default build); with libhexz (build tag
// hexz_local) it returns ErrUnsupported.
func StoreURL(src, url string, o *StoreOptions) (StoreReport, error) {
	curl := C.CString(url)
	defer C.free(unsafe.Pointer(curl))
	return store(src, nil, curl, o)
}

func store(src string, cdst, curl *C.char, o *StoreOptions) (StoreReport, error) {
	var opts C.hexz_store_options
	opts.struct_size = C.sizeof_hexz_store_options
	opts.url = curl
	if o != nil {
		opts.compression = C.uint32_t(o.Compression)
		opts.level = C.int32_t(o.Level)
		opts.block_size = C.uint32_t(o.BlockSize)
		opts.threads = C.uint32_t(o.Threads)
		if o.NoClobber {
			opts.no_clobber = 1
		}
		if o.Base != "" {
			base := C.CString(o.Base)
			defer C.free(unsafe.Pointer(base))
			opts.base = base
		}
		if o.ParentDir != "" {
			dir := C.CString(o.ParentDir)
			defer C.free(unsafe.Pointer(dir))
			opts.parent_dir = dir
		}
	}
	csrc := C.CString(src)
	defer C.free(unsafe.Pointer(csrc))
	r := C.hexz_store_report{struct_size: C.sizeof_hexz_store_report}
	if e := call(func() C.hexz_status { return C.hexz_store(csrc, cdst, &opts, &r) }); e != nil {
		if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
			return StoreReport{}, missing(e, src)
		}
		return StoreReport{}, e
	}
	return StoreReport{
		SourceSize: int64(r.source_size), ArchiveSize: int64(r.archive_size), Blocks: int64(r.blocks),
		DeduplicatedBlocks: int64(r.deduplicated_blocks), Tensors: int64(r.tensors),
		ParentBlocks: int64(r.parent_blocks), DeltaBlocks: int64(r.delta_blocks),
	}, nil
}
