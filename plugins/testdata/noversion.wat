;; Does not import nodb_v1.abi_version_1: refused at load.
(module
  (memory (export "memory") 1)
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param i32) (result i32) (i32.const 0)))
