;; Endless loops of every shape the instrumentation must catch (the event's
;; seq picks one): each iteration goes back to a loop through a different
;; branch instruction, so each must run out of fuel.
(module
  (import "nodb_v1" "abi_version_1" (func $abi_version))
  (memory (export "memory") 1)
  (func (export "nodb_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "nodb_reduce") (param $n i32) (result i32)
    (local $seq i32)
    (local.set $seq (i32.wrap_i64 (i64.load (i32.const 1024))))
    ;; 1: br_if back to the loop
    (if (i32.eq (local.get $seq) (i32.const 1)) (then
      (loop $l (br_if $l (i32.const 1)))))
    ;; 2: br_table whose default is the loop
    (if (i32.eq (local.get $seq) (i32.const 2)) (then
      (loop $l (block $b (br_table $b $l (i32.const 7))))))
    ;; 3: br to an outer loop from inside a block inside an inner loop
    (if (i32.eq (local.get $seq) (i32.const 3)) (then
      (loop $outer
        (loop $inner
          (block $b
            (br $outer))))))
    ;; 4: a loop inside an if inside a loop: the inner one exits, the outer one repeats
    (if (i32.eq (local.get $seq) (i32.const 4)) (then
      (loop $outer
        (if (i32.const 1) (then (loop $inner (nop))))
        (br $outer))))
    (i32.const 0)))
