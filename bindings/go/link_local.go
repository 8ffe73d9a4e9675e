//go:build hexz_local

package hexz

// libhexz (build tag hexz_local): the C ABI without the remote stack;
// OpenURL opens local paths and returns ErrUnsupported for URLs.

// #cgo pkg-config: hexz
import "C"

// linksRemote: whether the library linked opens URLs.
const linksRemote = false
