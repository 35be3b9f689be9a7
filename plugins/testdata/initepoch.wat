;; _initialize traps in the instance of view "test" for epoch 1 only: it
;; draws 4 random bytes (seeded from view and epoch, ABI.md 9.1) and traps
;; if they are that epoch's. Loading succeeds; the view's first event of
;; epoch 1 fails.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_initialize")
    (call $abi_version)
    (drop (call $random_get (i32.const 0) (i32.const 4)))
    (if (i32.eq (i32.load (i32.const 0)) (i32.const 0xfc27a801)) (then unreachable)))
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param i32) (result i32) (i32.const 0)))
