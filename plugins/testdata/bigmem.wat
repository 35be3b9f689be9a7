;; Declares a memory minimum of 5000 pages (over a 4096-page cap).
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (memory (export "memory") 5000)
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param i32) (result i32) (i32.const 0)))
