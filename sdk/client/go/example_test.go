package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"sync"
	"time"

	client "github.com/nodb-dev/nodb/sdk/client/go"
)

// Publishing one event and waiting until it is durable.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://127.0.0.1:7070/v1/ws")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ack, err := c.Publish(ctx, "todo/add", map[string]string{"id": "a1", "text": "milk"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored at seq", ack.Seq)
}

// Many goroutines share one client; their events are pipelined on one
// connection and survive reconnects.
func ExampleClient_Publish_concurrent() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://127.0.0.1:7070/v1/ws", client.WithCBOR())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := c.Publish(ctx, "clicks/click", json.RawMessage(fmt.Sprintf(`{"worker":%d}`, i))); err != nil {
				log.Print(err)
			}
		}(i)
	}
	wg.Wait()
}

// Fire-and-collect: queue many events, then wait for all the acks.
func ExampleClient_PublishAsync() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://127.0.0.1:7070/v1/ws")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	futures := make([]*client.Future, 100)
	for i := range futures {
		futures[i] = c.PublishAsync(ctx, "metrics/sample", map[string]int{"n": i})
	}
	for _, f := range futures {
		if _, err := f.Wait(ctx); err != nil {
			log.Fatal(err)
		}
	}
}

// A persistent producer keeps its id and resumes its pseq after a restart.
func ExampleWithStartPSeq() {
	ctx := context.Background()
	next := loadNextPSeq() // e.g. from a local file, saved after Flush
	c, err := client.Dial(ctx, "ws://127.0.0.1:7070/v1/ws",
		client.WithProducer("billing-worker-1"), client.WithStartPSeq(next))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Publish(ctx, "invoice/issued", map[string]any{"invoice": 1234}); err != nil {
		log.Fatal(err)
	}
	if err := c.Flush(ctx); err == nil {
		saveNextPSeq(c.NextPSeq())
	}
}

func loadNextPSeq() uint64  { return 1 }
func saveNextPSeq(n uint64) {}
