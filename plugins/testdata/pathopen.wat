;; Imports WASI path_open: refused at load (plugins have no file system).
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param i32) (result i32) (i32.const 0)))
