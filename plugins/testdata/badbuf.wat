;; nodb_buffer returns a pointer outside memory: the first event traps.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (memory (export "memory") 1)
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 0xfffffff0))
  (func (export "nodb_reduce") (param i32) (result i32) (i32.const 0)))
