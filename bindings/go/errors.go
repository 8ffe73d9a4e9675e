package hexz

/*
#include <hexz.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"io/fs"
)

// Sentinel errors. Every error this package returns is an *Error that
// matches one of them with errors.Is.
var (
	// ErrCorrupt: the archive is damaged (checksum or block hash mismatch,
	// truncated, a field out of range, a block that does not decode).
	ErrCorrupt = errors.New("hexz: corrupt archive")
	// ErrParentMissing: the archive was stored against a parent that cannot
	// be found, or the file found there is another archive.
	ErrParentMissing = errors.New("hexz: parent archive missing")
	// ErrNotFound: no such file, tensor or key.
	ErrNotFound = errors.New("hexz: not found")
	// ErrInvalidInput: not a .hxz archive (a plain .gguf, say), a malformed
	// source to store, or an argument out of range.
	ErrInvalidInput = errors.New("hexz: invalid input")
	// ErrShortBuffer: the caller's buffer is too small; Error.Need says how
	// many bytes are needed.
	ErrShortBuffer = errors.New("hexz: buffer too small")
	// ErrUnsupported: a newer format version, a codec this build lacks, or
	// an operation this archive does not support.
	ErrUnsupported = errors.New("hexz: unsupported")
	// ErrIO: reading or writing a file failed.
	ErrIO = errors.New("hexz: I/O error")
	// ErrOutOfMemory: an allocation failed or a memory cap was reached.
	ErrOutOfMemory = errors.New("hexz: out of memory")
	// ErrClosed: the archive was closed.
	ErrClosed = errors.New("hexz: archive closed")
	// ErrCancelled: the operation was cancelled.
	ErrCancelled = errors.New("hexz: cancelled")
	// ErrInternal: a contained internal failure (a bug; please report it).
	ErrInternal = errors.New("hexz: internal error")
	// ErrSignature: trusted keys were given and the archive carries no valid
	// signature by one of them (unsigned, another key, or changed since it
	// was signed). Nothing was read from it.
	ErrSignature = errors.New("hexz: no valid signature by a trusted key")
	// ErrKey: the archive is encrypted (format 1.5) and no key was given
	// (Status KEY_REQUIRED), or none of the identities and passphrases
	// given opens it (WRONG_KEY). Nothing was read from it. Damaged
	// ciphertext is ErrCorrupt (Status DECRYPT).
	ErrKey = errors.New("hexz: no key opens the encrypted archive")
)

// Category is the kind of failure a status is (hexz_category in hexz.h).
// The sentinel error a status matches is chosen from its category, by the
// table Python's exception classes come from too
// (bindings/testdata/error-categories.json).
type Category uint32

// Category is the status's category, as libhexz gives it.
func (s Status) Category() Category {
	return Category(C.hexz_status_category(C.uint32_t(s)))
}

// Status is a libhexz status code (hexz_status in hexz.h).
type Status uint32

// String is the status's description from libhexz.
func (s Status) String() string {
	return C.GoString(C.hexz_status_str(C.uint32_t(s)))
}

// Error is a failed libhexz call: the status, the message libhexz gave
// (hexz_last_error, read on the thread that made the call) and, for
// ErrShortBuffer, the bytes needed.
type Error struct {
	Status Status
	Msg    string
	// Need is the buffer size a call needed (ErrShortBuffer only).
	Need int
	// Err is an underlying error (fs.ErrNotExist for a missing file).
	Err error
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return "hexz: " + e.Status.String()
	}
	return "hexz: " + e.Msg
}

// Is matches the sentinel of the status's category (and the underlying
// error); a too-small buffer also matches ErrShortBuffer.
func (e *Error) Is(target error) bool {
	if target == sentinel(e.Status) {
		return true
	}
	if target == ErrShortBuffer && e.Status == C.HEXZ_STATUS_BUFFER_TOO_SMALL {
		return true
	}
	if target == ErrNotFound && e.Err != nil && errors.Is(e.Err, fs.ErrNotExist) {
		return true
	}
	return e.Err != nil && errors.Is(e.Err, target)
}

// Unwrap gives the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

// sentinel is the sentinel error of the status's category.
func sentinel(s Status) error {
	return categorySentinel(s.Category())
}

func categorySentinel(c Category) error {
	switch c {
	case C.HEXZ_CATEGORY_OK:
		return nil
	case C.HEXZ_CATEGORY_INVALID_INPUT:
		return ErrInvalidInput
	case C.HEXZ_CATEGORY_NOT_FOUND:
		return ErrNotFound
	case C.HEXZ_CATEGORY_CORRUPT:
		return ErrCorrupt
	case C.HEXZ_CATEGORY_PARENT_MISSING:
		return ErrParentMissing
	case C.HEXZ_CATEGORY_UNSUPPORTED:
		return ErrUnsupported
	case C.HEXZ_CATEGORY_IO:
		return ErrIO
	case C.HEXZ_CATEGORY_OUT_OF_MEMORY:
		return ErrOutOfMemory
	case C.HEXZ_CATEGORY_CANCELLED:
		return ErrCancelled
	case C.HEXZ_CATEGORY_SIGNATURE:
		return ErrSignature
	case C.HEXZ_CATEGORY_KEY:
		return ErrKey
	default:
		return ErrInternal
	}
}

// missing wraps an IO failure on a path that does not exist so that it also
// matches ErrNotFound and fs.ErrNotExist.
func missing(e *Error, path string) *Error {
	e.Err = &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	return e
}

func shortBuffer(need, got int, what string) *Error {
	return &Error{
		Status: C.HEXZ_STATUS_BUFFER_TOO_SMALL,
		Msg:    fmt.Sprintf("%s: buffer of %d bytes, %d needed", what, got, need),
		Need:   need,
	}
}
