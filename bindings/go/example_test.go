package hexz_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	hexz "github.com/hexz-dev/hexz/bindings/go"
)

// Store a small safetensors file, then read one tensor back by name.
func Example() {
	dir, _ := os.MkdirTemp("", "hexz-example-")
	defer os.RemoveAll(dir)

	// A safetensors file with one 2x3 F32 tensor.
	header := []byte(`{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}`)
	file := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	file = append(file, header...)
	for i := 0; i < 6; i++ {
		file = binary.LittleEndian.AppendUint32(file, uint32(i))
	}
	src := filepath.Join(dir, "model.safetensors")
	os.WriteFile(src, file, 0o644)

	if _, err := hexz.Store(src, filepath.Join(dir, "model.hxz"), nil); err != nil {
		fmt.Println(err)
		return
	}
	a, err := hexz.Open(filepath.Join(dir, "model.hxz"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()

	t, _ := a.Tensor("w")
	buf := make([]byte, t.Length)
	n, err := a.ReadTensor("w", buf)
	fmt.Println(a.Info().SourceFormat, t.Name, t.DType, t.Shape, n, err)
	fmt.Println(binary.LittleEndian.Uint32(buf[20:]))
	// Output:
	// safetensors w F32 [2 3] 24 <nil>
	// 5
}
