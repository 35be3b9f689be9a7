package wire

import "testing"

var benchMsg = []byte(`{"type":"publish","id":12345,"event":{"producer":"bench-17-42","pseq":12345,"type":"bench/ingest","payload":{"user":"u-000017","action":"add_to_cart","item":{"sku":"SKU-00134623","qty":1,"price_cents":1999},"session":"s-000001780393","ua":"nodbbench/1","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}}`)

func BenchmarkDecodePublishJSON(b *testing.B) {
	var r Request
	for i := 0; i < b.N; i++ {
		if err := DecodeRequest(JSON, benchMsg, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodePublishFast checks that the fast path never changes a result:
// whatever it accepts, the full decoder accepts identically.
func FuzzDecodePublishFast(f *testing.F) {
	f.Add(benchMsg)
	f.Add([]byte(`{"type":"publish","event":{"producer":"p","pseq":1,"type":"t"}}`))
	f.Add([]byte(`{"event":{"payload":[1,"a\"b",{"x":null}],"type":"t","pseq":9,"producer":"p"},"id":0,"type":"publish"}`))
	f.Add([]byte(`{"type":"publish","id":1,"event":{"producer":"p","pseq":1,"type":"t","payload":{"a":}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast, slow Request
		if !decodePublishFast(data, &fast) {
			return
		}
		if err := decodeJSONRequestSlow(data, &slow); err != nil {
			t.Fatalf("fast path accepted %q, full decoder says %v", data, err)
		}
		if fast.Type != slow.Type || fast.ID != slow.ID || fast.Event.Producer != slow.Event.Producer ||
			fast.Event.PSeq != slow.Event.PSeq || fast.Event.Type != slow.Event.Type || string(fast.Event.Payload) != string(slow.Event.Payload) {
			t.Fatalf("fast %+v != slow %+v for %q", fast, slow, data)
		}
	})
}

func decodeJSONRequestSlow(data []byte, r *Request) error { return decodeJSONRequestFull(data, r) }
