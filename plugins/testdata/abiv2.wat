;; Built for a hypothetical ABI v2: refused at load with ErrABIVersion.
(module
  (import "nodb_v2" "abi_version_2" (func $abi_version))
  (memory (export "memory") 1)
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param i32) (result i32) (i32.const 0)))
