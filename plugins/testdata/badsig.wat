;; Imports a known host function with the wrong type: refused at load.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (import "nodb_v1" "consume" (func $c (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param i32) (result i32) (i32.const 0)))
