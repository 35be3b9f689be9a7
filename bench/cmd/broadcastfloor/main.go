// Command broadcastfloor is the cost floor of the fan-out benchmark: a bare
// gorilla WebSocket server that relays every message its publisher sends to
// every other connection, each message prepared once (PreparedMessage) and
// queued to one writer goroutine per connection, as nodb's hub does, but
// with no event log, reducer, state tree or protocol.
package main

import (
	"flag"
	"log"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
)

type client struct {
	ws  *websocket.Conn
	out chan *websocket.PreparedMessage
}

func main() {
	addr := flag.String("addr", "127.0.0.1:7078", "listen address")
	flag.Parse()
	var mu sync.RWMutex
	clients := map[*client]struct{}{}
	up := websocket.Upgrader{Subprotocols: []string{"nodb.v1.json"}}
	http.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ready\n")) })
	// Subscribers connect to /v1/ws; the publisher to /publish.
	http.HandleFunc("/v1/ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &client{ws: ws, out: make(chan *websocket.PreparedMessage, 4096)}
		mu.Lock()
		clients[c] = struct{}{}
		mu.Unlock()
		go func() {
			for pm := range c.out {
				if ws.WritePreparedMessage(pm) != nil {
					break
				}
			}
		}()
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				break
			}
		}
		mu.Lock()
		delete(clients, c)
		mu.Unlock()
		ws.Close()
	})
	http.HandleFunc("/publish", func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			pm, err := websocket.NewPreparedMessage(websocket.TextMessage, data)
			if err != nil {
				return
			}
			mu.RLock()
			for c := range clients {
				select {
				case c.out <- pm:
				default: // a slow reader loses the message; the benchmark's readers keep up
				}
			}
			mu.RUnlock()
		}
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
