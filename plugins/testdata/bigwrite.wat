;; One fd_write to stdout of 32 iovecs of 1 MiB each (32 MiB). The host
;; writes at most 16 MiB a call (ABI.md 9.2): nodb_reduce returns 0 if
;; nwritten says 16 MiB, else 1. Without the cap, 1M iovecs of the whole
;; memory would keep the host busy for hours in one call, out of reach of
;; the time limit.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 17)
  (func (export "_initialize") (call $abi_version))
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 0x100400))
  (func (export "nodb_reduce") (param $n i32) (result i32)
    (local $k i32)
    ;; iovecs at 0x100000: {0, 1 MiB} x 32
    (loop $l
      (i32.store (i32.add (i32.const 0x100000) (i32.shl (local.get $k) (i32.const 3))) (i32.const 0))
      (i32.store (i32.add (i32.const 0x100004) (i32.shl (local.get $k) (i32.const 3))) (i32.const 0x100000))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $k) (i32.const 32))))
    (if (call $fd_write (i32.const 1) (i32.const 0x100000) (i32.const 32) (i32.const 0x100200))
      (then (return (i32.const 2))))
    (i32.ne (i32.load (i32.const 0x100200)) (i32.const 0x1000000))))
