;; nodb_reduce recurses without bound: the Wasm stack must overflow into a trap.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (memory (export "memory") 1)
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func $down (param i32) (result i32)
    (i32.add (call $down (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
  (func (export "nodb_reduce") (param i32) (result i32)
    (call $down (i32.const 0))))
