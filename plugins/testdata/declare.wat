;; Declares past the limits of consume (1024) and input (16) in _initialize,
;; then re-declares an input already declared; nodb_reduce returns 0 if every
;; instance saw the statuses of ABI.md sections 6.1 and 13.1 (the 1025th
;; consume and the 17th input StatusTooLarge, the repeated input 0), else
;; the number of the first check that failed. It declares inputs, so it is a
;; cascade: it receives nodb/patch events.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (import "nodb_v1" "consume" (func $consume (param i32 i32) (result i32)))
  (import "nodb_v1" "input" (func $input (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "t")
  (data (i32.const 16) "abcdefghijklmnopq")
  (global $consumeSt (mut i32) (i32.const 99))
  (global $inputSt (mut i32) (i32.const 99))
  (global $againSt (mut i32) (i32.const 99))
  (func (export "_initialize")
    (local $k i32)
    (call $abi_version)
    (loop $c
      (global.set $consumeSt (call $consume (i32.const 0) (i32.const 1)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $c (i32.lt_u (local.get $k) (i32.const 1025))))
    (local.set $k (i32.const 0))
    (loop $i
      (global.set $inputSt (call $input (i32.add (i32.const 16) (local.get $k)) (i32.const 1)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $i (i32.lt_u (local.get $k) (i32.const 17))))
    (global.set $againSt (call $input (i32.const 16) (i32.const 1))))
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param $n i32) (result i32)
    (if (i32.ne (global.get $consumeSt) (i32.const -5)) (then (return (i32.const 2))))
    (if (i32.ne (global.get $inputSt) (i32.const -5)) (then (return (i32.const 3))))
    (if (i32.ne (global.get $againSt) (i32.const 0)) (then (return (i32.const 4))))
    (i32.const 0)))
