// Command reducer is the todo-list reducer of the nodb example, as a Wasm
// plugin. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o examples/todos/todos.wasm ./examples/todos/reducer
//
// The handlers live in package todos, which registers them when imported.
package main

import _ "github.com/nodb-dev/nodb/examples/todos/reducer/todos"

func main() {}
