//go:build wasip1

package nodb

import "unsafe"

// The host functions of ABI v1 (see abi/ABI.md). Pointers are offsets into
// this module's memory; strings and slices are passed as pointer + length.

//go:wasmimport nodb_v1 abi_version_1
func abiVersion1()

//go:wasmimport nodb_v1 consume
func wasmConsume(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport nodb_v1 state_get
func wasmStateGet(path unsafe.Pointer, pathLen uint32, buf unsafe.Pointer, bufCap uint32) int32

//go:wasmimport nodb_v1 state_has
func wasmStateHas(path unsafe.Pointer, pathLen uint32) int32

//go:wasmimport nodb_v1 state_set
func wasmStateSet(path unsafe.Pointer, pathLen uint32, val unsafe.Pointer, valLen uint32) int32

//go:wasmimport nodb_v1 state_delete
func wasmStateDelete(path unsafe.Pointer, pathLen uint32) int32

//go:wasmimport nodb_v1 log
func wasmLog(level int32, msg unsafe.Pointer, n uint32)

//go:wasmimport nodb_v1 set_error
func wasmSetError(msg unsafe.Pointer, n uint32)

//go:wasmimport nodb_v1 input
func wasmInput(name unsafe.Pointer, n uint32) int32

//go:wasmimport nodb_v1 input_get
func wasmInputGet(name unsafe.Pointer, nameLen uint32, path unsafe.Pointer, pathLen uint32, buf unsafe.Pointer, bufCap uint32) int32

func init() {
	// The version marker: importing it is what matters; calling it keeps the
	// linker from dropping the import.
	abiVersion1()
}

func strPtr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

func bytesPtr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

func hostConsume(t string) int32 { return wasmConsume(strPtr(t), uint32(len(t))) }

func hostGet(path string, buf []byte) int32 {
	return wasmStateGet(strPtr(path), uint32(len(path)), bytesPtr(buf), uint32(len(buf)))
}

func hostHas(path string) int32 { return wasmStateHas(strPtr(path), uint32(len(path))) }

func hostSet(path string, v []byte) int32 {
	return wasmStateSet(strPtr(path), uint32(len(path)), bytesPtr(v), uint32(len(v)))
}

func hostDelete(path string) int32 { return wasmStateDelete(strPtr(path), uint32(len(path))) }

func hostLog(level int32, msg string) { wasmLog(level, strPtr(msg), uint32(len(msg))) }

func hostSetError(msg string) { wasmSetError(strPtr(msg), uint32(len(msg))) }

func hostInput(name string) int32 { return wasmInput(strPtr(name), uint32(len(name))) }

func hostInputGet(name, path string, buf []byte) int32 {
	return wasmInputGet(strPtr(name), uint32(len(name)), strPtr(path), uint32(len(path)), bytesPtr(buf), uint32(len(buf)))
}

//go:wasmexport nodb_buffer
func nodbBuffer(size uint32) uint32 {
	if size == 0 {
		size = 1
	}
	if uint32(len(frameBuf)) < size {
		frameBuf = make([]byte, size+size/4+256)
	}
	return uint32(uintptr(unsafe.Pointer(&frameBuf[0])))
}
