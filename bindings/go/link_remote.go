//go:build !hexz_local

package hexz

// libhexz-remote: the C ABI with s3:// and http(s):// URLs in OpenURL.

// #cgo pkg-config: hexz-remote
import "C"

// linksRemote: whether the library linked opens URLs.
const linksRemote = true
