;; The immediate retry of a state_get whose value did not fit (ABI.md 6.3)
;; after a state_get of a missing path and a state_has in between: it must
;; give the value, whatever the State did with its buffers meanwhile.
;; nodb_reduce returns 0, or the number of the first check that failed.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (import "nodb_v1" "state_get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "nodb_v1" "state_set" (func $set (param i32 i32 i32 i32) (result i32)))
  (import "nodb_v1" "state_has" (func $has (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "/c")
  (data (i32.const 8) "/missing")
  (data (i32.const 32) "\65hello")
  (func (export "_initialize") (call $abi_version))
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 4096))
  (func (export "nodb_reduce") (param $n i32) (result i32)
    (if (call $set (i32.const 0) (i32.const 2) (i32.const 32) (i32.const 6)) (then (return (i32.const 2))))
    ;; too small: the length, nothing written
    (if (i32.ne (call $get (i32.const 0) (i32.const 2) (i32.const 64) (i32.const 0)) (i32.const 6)) (then (return (i32.const 3))))
    (if (i32.ne (call $get (i32.const 8) (i32.const 8) (i32.const 64) (i32.const 0)) (i32.const -1)) (then (return (i32.const 4))))
    (if (i32.ne (call $has (i32.const 8) (i32.const 8)) (i32.const -1)) (then (return (i32.const 5))))
    ;; the retry
    (if (i32.ne (call $get (i32.const 0) (i32.const 2) (i32.const 64) (i32.const 16)) (i32.const 6)) (then (return (i32.const 6))))
    (if (i64.ne (i64.load (i32.const 64)) (i64.load (i32.const 32))) (then (return (i32.const 7))))
    (i32.const 0)))
