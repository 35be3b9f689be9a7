;; The host's plumbing alone, for BenchmarkPlumbing: nodb_reduce makes as
;; many pairs of state_get and state_set of "/a" (value true) as the event's
;; pseq says (0: the event boundary alone) and returns 0.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (import "nodb_v1" "state_get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "nodb_v1" "state_set" (func $set (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "/a")
  (data (i32.const 16) "\f5")
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param $n i32) (result i32)
    (local $k i32)
    (local.set $k (i32.wrap_i64 (i64.load (i32.const 1040)))) ;; pseq
    (block $done
      (loop $more
        (br_if $done (i32.le_s (local.get $k) (i32.const 0)))
        (drop (call $get (i32.const 0) (i32.const 2) (i32.const 32) (i32.const 16)))
        (drop (call $set (i32.const 0) (i32.const 2) (i32.const 16) (i32.const 1)))
        (local.set $k (i32.sub (local.get $k) (i32.const 1)))
        (br $more)))
    (i32.const 0)))
