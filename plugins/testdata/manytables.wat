;; Eight tables of 200,000 elements: each within the limit, together over it.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (memory (export "memory") 1)
  (table 200000 funcref) (table 200000 funcref) (table 200000 funcref) (table 200000 funcref)
  (table 200000 funcref) (table 200000 funcref) (table 200000 funcref) (table 200000 funcref)
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param i32) (result i32) (i32.const 0)))
