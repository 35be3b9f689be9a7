;; Passes out-of-range pointers and lengths to every host function; the event's
;; seq picks the case. nodb_v1 functions must trap cleanly (TrapError); WASI
;; functions return EFAULT (21), which this module turns into status 0.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (import "nodb_v1" "consume" (func $consume (param i32 i32) (result i32)))
  (import "nodb_v1" "state_get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "nodb_v1" "state_set" (func $set (param i32 i32 i32 i32) (result i32)))
  (import "nodb_v1" "state_delete" (func $del (param i32 i32) (result i32)))
  (import "nodb_v1" "state_has" (func $has (param i32 i32) (result i32)))
  (import "nodb_v1" "log" (func $log (param i32 i32 i32)))
  (import "nodb_v1" "set_error" (func $seterr (param i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "/a")
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func $efault_ok (param i32) (result i32)
    (if (result i32) (i32.eq (local.get 0) (i32.const 21)) (then (i32.const 0)) (else (i32.const 1))))
  (func (export "nodb_reduce") (param $n i32) (result i32)
    (local $seq i32)
    (local.set $seq (i32.wrap_i64 (i64.load (i32.const 1024))))
    (block $out (result i32)
      ;; 1: state_get, path out of range
      (if (i32.eq (local.get $seq) (i32.const 1)) (then
        (br $out (call $get (i32.const 0xfffffff0) (i32.const 100) (i32.const 0) (i32.const 0)))))
      ;; 2: state_get, buffer out of range
      (if (i32.eq (local.get $seq) (i32.const 2)) (then
        (br $out (call $get (i32.const 0) (i32.const 2) (i32.const 65530) (i32.const 100)))))
      ;; 3: state_set, value out of range
      (if (i32.eq (local.get $seq) (i32.const 3)) (then
        (br $out (call $set (i32.const 0) (i32.const 2) (i32.const 70000) (i32.const 1)))))
      ;; 4: state_set, huge value length
      (if (i32.eq (local.get $seq) (i32.const 4)) (then
        (br $out (call $set (i32.const 0) (i32.const 2) (i32.const 0) (i32.const 0x7fffffff)))))
      ;; 5: state_delete, path length wraps around
      (if (i32.eq (local.get $seq) (i32.const 5)) (then
        (br $out (call $del (i32.const 16) (i32.const 0xffffffff)))))
      ;; 6: log, message out of range
      (if (i32.eq (local.get $seq) (i32.const 6)) (then
        (call $log (i32.const 2) (i32.const 65000) (i32.const 1000)) (br $out (i32.const 0))))
      ;; 7: set_error, message out of range
      (if (i32.eq (local.get $seq) (i32.const 7)) (then
        (call $seterr (i32.const 0x80000000) (i32.const 10)) (br $out (i32.const 1))))
      ;; 8: consume, out of range
      (if (i32.eq (local.get $seq) (i32.const 8)) (then
        (br $out (call $consume (i32.const 65535) (i32.const 2)))))
      ;; 9: fd_write, iovec out of range -> EFAULT
      (if (i32.eq (local.get $seq) (i32.const 9)) (then
        (br $out (call $efault_ok (call $fd_write (i32.const 1) (i32.const 65532) (i32.const 4) (i32.const 0))))))
      ;; 10: random_get out of range -> EFAULT
      (if (i32.eq (local.get $seq) (i32.const 10)) (then
        (br $out (call $efault_ok (call $random_get (i32.const 65000) (i32.const 1000))))))
      ;; 11: clock_time_get result out of range -> EFAULT
      (if (i32.eq (local.get $seq) (i32.const 11)) (then
        (br $out (call $efault_ok (call $clock (i32.const 0) (i64.const 0) (i32.const 65535))))))
      ;; 12: state_get with a path longer than MaxPathSize -> StatusTooLarge
      (if (i32.eq (local.get $seq) (i32.const 12)) (then
        (br $out (call $get (i32.const 0) (i32.const 5000) (i32.const 0) (i32.const 0)))))
      ;; 13: state_has, path out of range
      (if (i32.eq (local.get $seq) (i32.const 13)) (then
        (br $out (call $has (i32.const 65530) (i32.const 100)))))
      ;; 14: state_has of a missing path -> StatusNotFound, returned as the status
      (if (i32.eq (local.get $seq) (i32.const 14)) (then
        (br $out (call $has (i32.const 0) (i32.const 2)))))
      (i32.const 0))))
