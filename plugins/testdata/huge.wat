;; Huge outputs: seq 1 logs a 128 KiB message, seq 2 sets a value of
;; MaxValueSize+1 bytes (a 16 MiB text string), seq 3 writes 10 MB to stderr.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (import "nodb_v1" "state_set" (func $set (param i32 i32 i32 i32) (result i32)))
  (import "nodb_v1" "log" (func $log (param i32 i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 300)
  (data (i32.const 0) "/a")
  (data (i32.const 100000) "\7a\01\00\00\01")
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param $n i32) (result i32)
    (local $seq i32)
    (local.set $seq (i32.wrap_i64 (i64.load (i32.const 1024))))
    (if (i32.eq (local.get $seq) (i32.const 1)) (then
      (call $log (i32.const 2) (i32.const 0) (i32.const 131072))
      (return (i32.const 0))))
    (if (i32.eq (local.get $seq) (i32.const 2)) (then
      (return (call $set (i32.const 0) (i32.const 2) (i32.const 100000) (i32.const 16777222)))))
    (if (i32.eq (local.get $seq) (i32.const 3)) (then
      (i32.store (i32.const 200) (i32.const 2000000))
      (i32.store (i32.const 204) (i32.const 10000000))
      (return (call $fd_write (i32.const 2) (i32.const 200) (i32.const 1) (i32.const 208)))))
    (i32.const 0)))
