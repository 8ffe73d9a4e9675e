package hexz

/*
#include <hexz.h>
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// GGUFType is a GGUF value type; String gives the names gguf-py uses
// (GGUFValueType: "UINT8", ..., "STRING", "ARRAY").
type GGUFType uint32

const (
	GGUFTypeUint8   GGUFType = C.HEXZ_GGUF_TYPE_UINT8
	GGUFTypeInt8    GGUFType = C.HEXZ_GGUF_TYPE_INT8
	GGUFTypeUint16  GGUFType = C.HEXZ_GGUF_TYPE_UINT16
	GGUFTypeInt16   GGUFType = C.HEXZ_GGUF_TYPE_INT16
	GGUFTypeUint32  GGUFType = C.HEXZ_GGUF_TYPE_UINT32
	GGUFTypeInt32   GGUFType = C.HEXZ_GGUF_TYPE_INT32
	GGUFTypeFloat32 GGUFType = C.HEXZ_GGUF_TYPE_FLOAT32
	GGUFTypeBool    GGUFType = C.HEXZ_GGUF_TYPE_BOOL
	GGUFTypeString  GGUFType = C.HEXZ_GGUF_TYPE_STRING
	GGUFTypeArray   GGUFType = C.HEXZ_GGUF_TYPE_ARRAY
	GGUFTypeUint64  GGUFType = C.HEXZ_GGUF_TYPE_UINT64
	GGUFTypeInt64   GGUFType = C.HEXZ_GGUF_TYPE_INT64
	GGUFTypeFloat64 GGUFType = C.HEXZ_GGUF_TYPE_FLOAT64
)

var ggufTypeNames = map[GGUFType]string{
	GGUFTypeUint8: "UINT8", GGUFTypeInt8: "INT8", GGUFTypeUint16: "UINT16", GGUFTypeInt16: "INT16",
	GGUFTypeUint32: "UINT32", GGUFTypeInt32: "INT32", GGUFTypeFloat32: "FLOAT32", GGUFTypeBool: "BOOL",
	GGUFTypeString: "STRING", GGUFTypeArray: "ARRAY", GGUFTypeUint64: "UINT64", GGUFTypeInt64: "INT64",
	GGUFTypeFloat64: "FLOAT64",
}

func (t GGUFType) String() string {
	if s, ok := ggufTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("GGUFType(%d)", uint32(t))
}

// GGUFKV is one key/value of a GGUF header. Value holds the Go type of
// Type: uint8, int8, uint16, int16, uint32, int32, float32, bool, string,
// uint64, int64, float64; for arrays a slice of the element type
// ([]float32, []string, ...; []bool for BOOL), with ArrayType set.
type GGUFKV struct {
	Key       string
	Type      GGUFType
	ArrayType GGUFType
	Value     any
}

// GGUFInfo is a GGUF file's header: version, alignment, where the tensor
// data starts, and every key/value in file order.
type GGUFInfo struct {
	Version    uint32
	Alignment  uint64
	DataOffset uint64
	KV         []GGUFKV
	index      map[string]int
}

// Get returns the key/value called key.
func (g *GGUFInfo) Get(key string) (GGUFKV, bool) {
	i, ok := g.index[key]
	if !ok {
		return GGUFKV{}, false
	}
	return g.KV[i], true
}

// GGUF reads the typed key/values of a GGUF archive (ErrUnsupported for
// other formats).
func (a *Archive) GGUF() (*GGUFInfo, error) {
	h, err := a.handle()
	if err != nil {
		return nil, err
	}
	defer a.mu.RUnlock()
	g := &GGUFInfo{index: map[string]int{}}
	var version C.uint32_t
	var alignment, dataOffset C.uint64_t
	if e := call(func() C.hexz_status {
		return C.hexz_gguf_get_header_info(h, &version, &alignment, &dataOffset)
	}); e != nil {
		return nil, e
	}
	g.Version, g.Alignment, g.DataOffset = uint32(version), uint64(alignment), uint64(dataOffset)
	var n C.size_t
	if e := call(func() C.hexz_status { return C.hexz_gguf_kv_count(h, &n) }); e != nil {
		return nil, e
	}
	g.KV = make([]GGUFKV, 0, int(n))
	for i := C.size_t(0); i < n; i++ {
		kv, err := ggufKV(h, i)
		if err != nil {
			return nil, err
		}
		if _, dup := g.index[kv.Key]; !dup {
			g.index[kv.Key] = len(g.KV)
		}
		g.KV = append(g.KV, kv)
	}
	return g, nil
}

func ggufKV(h *C.hexz_archive, i C.size_t) (GGUFKV, error) {
	var key *C.char
	var keyLen C.size_t
	var ty C.uint32_t
	if e := call(func() C.hexz_status { return C.hexz_gguf_get_key(h, i, &key, &keyLen) }); e != nil {
		return GGUFKV{}, e
	}
	if e := call(func() C.hexz_status { return C.hexz_gguf_get_type(h, i, &ty) }); e != nil {
		return GGUFKV{}, e
	}
	kv := GGUFKV{Key: C.GoStringN(key, C.int(keyLen)), Type: GGUFType(ty)}
	var e *Error
	switch kv.Type {
	case GGUFTypeUint8:
		var v C.uint8_t
		e = call(func() C.hexz_status { return C.hexz_gguf_get_u8(h, i, &v) })
		kv.Value = uint8(v)
	case GGUFTypeInt8:
		var v C.int8_t
		e = call(func() C.hexz_status { return C.hexz_gguf_get_i8(h, i, &v) })
		kv.Value = int8(v)
	case GGUFTypeUint16:
		var v C.uint16_t
		e = call(func() C.hexz_status { return C.hexz_gguf_get_u16(h, i, &v) })
		kv.Value = uint16(v)
	case GGUFTypeInt16:
		var v C.int16_t
		e = call(func() C.hexz_status { return C.hexz_gguf_get_i16(h, i, &v) })
		kv.Value = int16(v)
	case GGUFTypeUint32:
		var v C.uint32_t
		e = call(func() C.hexz_status { return C.hexz_gguf_get_u32(h, i, &v) })
		kv.Value = uint32(v)
	case GGUFTypeInt32:
		var v C.int32_t
		e = call(func() C.hexz_status { return C.hexz_gguf_get_i32(h, i, &v) })
		kv.Value = int32(v)
	case GGUFTypeFloat32:
		var v C.float
		e = call(func() C.hexz_status { return C.hexz_gguf_get_f32(h, i, &v) })
		kv.Value = float32(v)
	case GGUFTypeBool:
		var v C.bool
		e = call(func() C.hexz_status { return C.hexz_gguf_get_bool(h, i, &v) })
		kv.Value = bool(v)
	case GGUFTypeUint64:
		var v C.uint64_t
		e = call(func() C.hexz_status { return C.hexz_gguf_get_u64(h, i, &v) })
		kv.Value = uint64(v)
	case GGUFTypeInt64:
		var v C.int64_t
		e = call(func() C.hexz_status { return C.hexz_gguf_get_i64(h, i, &v) })
		kv.Value = int64(v)
	case GGUFTypeFloat64:
		var v C.double
		e = call(func() C.hexz_status { return C.hexz_gguf_get_f64(h, i, &v) })
		kv.Value = float64(v)
	case GGUFTypeString:
		var s *C.char
		var sl C.size_t
		e = call(func() C.hexz_status { return C.hexz_gguf_get_string(h, i, &s, &sl) })
		kv.Value = C.GoStringN(s, C.int(sl))
	case GGUFTypeArray:
		kv.ArrayType, kv.Value, e = ggufArray(h, i)
	default:
		e = &Error{Status: C.HEXZ_STATUS_UNSUPPORTED, Msg: fmt.Sprintf("GGUF key %q: unknown type %d", kv.Key, ty)}
	}
	if e != nil {
		return GGUFKV{}, e
	}
	return kv, nil
}

func ggufArray(h *C.hexz_archive, i C.size_t) (GGUFType, any, *Error) {
	var elem C.uint32_t
	var n C.uint64_t
	if e := call(func() C.hexz_status { return C.hexz_gguf_get_array_info(h, i, &elem, &n) }); e != nil {
		return 0, nil, e
	}
	et := GGUFType(elem)
	if et == GGUFTypeString {
		out := make([]string, 0, int(n))
		for k := C.uint64_t(0); k < n; k++ {
			var s *C.char
			var sl C.size_t
			if e := call(func() C.hexz_status { return C.hexz_gguf_get_array_string(h, i, k, &s, &sl) }); e != nil {
				return 0, nil, e
			}
			out = append(out, C.GoStringN(s, C.int(sl)))
		}
		return et, out, nil
	}
	if et == GGUFTypeArray {
		return et, nil, &Error{Status: C.HEXZ_STATUS_UNSUPPORTED, Msg: "GGUF arrays of arrays are not supported"}
	}
	var data unsafe.Pointer
	var nbytes C.size_t
	if e := call(func() C.hexz_status { return C.hexz_gguf_get_array_data(h, i, &data, &nbytes) }); e != nil {
		return 0, nil, e
	}
	var raw []byte
	if nbytes > 0 {
		raw = C.GoBytes(data, C.int(nbytes))
	}
	v, err := decodeScalars(et, raw, int(n))
	return et, v, err
}

// decodeScalars turns little-endian array data into a typed slice.
func decodeScalars(et GGUFType, raw []byte, n int) (any, *Error) {
	le := binary.LittleEndian
	size := map[GGUFType]int{GGUFTypeUint8: 1, GGUFTypeInt8: 1, GGUFTypeBool: 1, GGUFTypeUint16: 2,
		GGUFTypeInt16: 2, GGUFTypeUint32: 4, GGUFTypeInt32: 4, GGUFTypeFloat32: 4, GGUFTypeUint64: 8,
		GGUFTypeInt64: 8, GGUFTypeFloat64: 8}[et]
	if size == 0 || len(raw) != size*n {
		return nil, &Error{Status: C.HEXZ_STATUS_INVALID_FIELD, Msg: fmt.Sprintf("GGUF array of %v: %d bytes for %d elements", et, len(raw), n)}
	}
	switch et {
	case GGUFTypeUint8:
		return append([]uint8(nil), raw...), nil
	case GGUFTypeInt8:
		out := make([]int8, n)
		for k := range out {
			out[k] = int8(raw[k])
		}
		return out, nil
	case GGUFTypeBool:
		out := make([]bool, n)
		for k := range out {
			out[k] = raw[k] != 0
		}
		return out, nil
	case GGUFTypeUint16:
		out := make([]uint16, n)
		for k := range out {
			out[k] = le.Uint16(raw[2*k:])
		}
		return out, nil
	case GGUFTypeInt16:
		out := make([]int16, n)
		for k := range out {
			out[k] = int16(le.Uint16(raw[2*k:]))
		}
		return out, nil
	case GGUFTypeUint32:
		out := make([]uint32, n)
		for k := range out {
			out[k] = le.Uint32(raw[4*k:])
		}
		return out, nil
	case GGUFTypeInt32:
		out := make([]int32, n)
		for k := range out {
			out[k] = int32(le.Uint32(raw[4*k:]))
		}
		return out, nil
	case GGUFTypeFloat32:
		out := make([]float32, n)
		for k := range out {
			out[k] = math.Float32frombits(le.Uint32(raw[4*k:]))
		}
		return out, nil
	case GGUFTypeUint64:
		out := make([]uint64, n)
		for k := range out {
			out[k] = le.Uint64(raw[8*k:])
		}
		return out, nil
	case GGUFTypeInt64:
		out := make([]int64, n)
		for k := range out {
			out[k] = int64(le.Uint64(raw[8*k:]))
		}
		return out, nil
	default: // GGUFTypeFloat64
		out := make([]float64, n)
		for k := range out {
			out[k] = math.Float64frombits(le.Uint64(raw[8*k:]))
		}
		return out, nil
	}
}
