;; Each event grows memory by a page and passes state_set a one-byte value
;; (true) at the last byte of memory (odd seq: within range, status 0) or
;; just past it (even seq: must trap). Checks that host functions see the
;; memory's current size after memory.grow.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (import "nodb_v1" "state_set" (func $set (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "/a")
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param $n i32) (result i32)
    (local $end i32)
    (drop (memory.grow (i32.const 1)))
    (local.set $end (i32.mul (memory.size) (i32.const 65536)))
    (i32.store8 (i32.sub (local.get $end) (i32.const 1)) (i32.const 0xf5))
    (if (result i32) (i32.wrap_i64 (i64.and (i64.load (i32.const 1024)) (i64.const 1)))
      (then (call $set (i32.const 0) (i32.const 2) (i32.sub (local.get $end) (i32.const 1)) (i32.const 1)))
      (else (call $set (i32.const 0) (i32.const 2) (local.get $end) (i32.const 1))))))
