;; nodb_reduce never returns: the per-event time limit must stop it.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (memory (export "memory") 1)
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param i32) (result i32)
    (loop $forever (br $forever))
    (i32.const 0)))
