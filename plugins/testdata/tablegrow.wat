;; nodb_reduce grows its table (declared without a maximum) by 100,000,000
;; elements, then by 1000; it traps unless the first grow fails and the
;; second succeeds.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param i32) (result i32)
    (if (i32.ne (table.grow $t (ref.null func) (i32.const 100000000)) (i32.const -1))
      (then unreachable))
    (if (i32.eq (table.grow $t (ref.null func) (i32.const 1000)) (i32.const -1))
      (then unreachable))
    (i32.const 0)))
