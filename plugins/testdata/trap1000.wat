;; Reduces fine until the event with seq 1000, where it traps.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (memory (export "memory") 1)
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param i32) (result i32)
    (if (i64.eq (i64.load (i32.const 1024)) (i64.const 1000)) (then unreachable))
    (i32.const 0)))
