;; WASI calls at the edges of ABI.md 9.2; the event's seq picks the case and
;; nodb_reduce returns the errno (0: the event is accepted, else rejected
;; with the errno as its status).
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_initialize") (call $abi_version))
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param $n i32) (result i32)
    (local $seq i32)
    (local.set $seq (i32.wrap_i64 (i64.load (i32.const 1024))))
    ;; 1: fd_read of stdin, iovecs out of range, nread in range: 0 (nothing is read)
    (if (i32.eq (local.get $seq) (i32.const 1)) (then
      (return (call $fd_read (i32.const 0) (i32.const 0xfffffff0) (i32.const 4) (i32.const 16)))))
    ;; 2: fd_read of stdin, nread out of range: EFAULT
    (if (i32.eq (local.get $seq) (i32.const 2)) (then
      (return (call $fd_read (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 65535)))))
    ;; 3: args_get with pointers out of range: 0 (nothing is written)
    (if (i32.eq (local.get $seq) (i32.const 3)) (then
      (return (call $args_get (i32.const 0xfffffff0) (i32.const 0xfffffff0)))))
    ;; 4: poll_oneoff of no subscription: EINVAL
    (if (i32.eq (local.get $seq) (i32.const 4)) (then
      (return (call $poll (i32.const 0) (i32.const 64) (i32.const 0) (i32.const 128)))))
    ;; 5: clock_time_get of clock 4: EINVAL
    (if (i32.eq (local.get $seq) (i32.const 5)) (then
      (return (call $clock (i32.const 4) (i64.const 0) (i32.const 16)))))
    ;; 6: fd_write to fd 3: EBADF
    (if (i32.eq (local.get $seq) (i32.const 6)) (then
      (return (call $fd_write (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 16)))))
    ;; 7: random_get of 0 bytes at the end of memory: 0
    (if (i32.eq (local.get $seq) (i32.const 7)) (then
      (return (call $random_get (i32.const 65536) (i32.const 0)))))
    ;; 8: fd_read of fd 1: EBADF
    (if (i32.eq (local.get $seq) (i32.const 8)) (then
      (return (call $fd_read (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 16)))))
    (i32.const 0)))
