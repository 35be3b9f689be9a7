package abi

// AppendJSONAsCBORGeneric is AppendJSONAsCBOR with every object converted
// by container instead of object's in-line fast path: the reference that
// FuzzJSONObject holds object to.
func AppendJSONAsCBORGeneric(dst, js []byte) ([]byte, error) {
	return appendJSONAsCBOR(dst, jsonParser{in: js, generic: true})
}
