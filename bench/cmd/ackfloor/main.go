// Command ackfloor is the cost floor of the ingest benchmark: a bare gorilla
// WebSocket server that speaks just enough of nodb's protocol (hello, then an
// ack for every publish) with no decoding beyond the id, no storage and no
// fsync. nodb's ingest figures are printed next to it, so the ratio shows
// what durability, dedupe and validation cost on this machine.
package main

import (
	"bytes"
	"flag"
	"log"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7079", "listen address")
	flag.Parse()
	var seq atomic.Uint64
	up := websocket.Upgrader{Subprotocols: []string{"nodb.v1.json"}}
	http.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ready\n")) })
	http.HandleFunc("/v1/ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello","protocol":1,"server":"ackfloor","version":"0","max_frame":1048576,"head":0}`))
		buf := make([]byte, 0, 128)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			// The id is the only field needed: {"type":"publish","id":N,...}
			id := uint64(0)
			if i := bytes.Index(data, []byte(`"id":`)); i >= 0 {
				j := i + 5
				for j < len(data) && data[j] >= '0' && data[j] <= '9' {
					id = id*10 + uint64(data[j]-'0')
					j++
				}
			}
			buf = append(buf[:0], `{"type":"ack","id":`...)
			buf = strconv.AppendUint(buf, id, 10)
			buf = append(buf, `,"seq":`...)
			buf = strconv.AppendUint(buf, seq.Add(1), 10)
			buf = append(buf, `,"duplicate":false}`...)
			if err := ws.WriteMessage(websocket.TextMessage, buf); err != nil {
				return
			}
		}
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
