package abi

// AppendJSONAsCBORGeneric is AppendJSONAsCBOR with every member of an
// array or object converted by value instead of member's in-line fast path:
// the reference that FuzzJSONObject holds the fast path to.
func AppendJSONAsCBORGeneric(dst, js []byte) ([]byte, error) {
	return appendJSONAsCBOR(dst, jsonParser{in: js, generic: true})
}
