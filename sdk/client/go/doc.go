// Package client is the Go client SDK for nodb: it publishes events to a nodb
// host over its WebSocket protocol (abi/PROTOCOL.md, package abi/wire) with
// exactly-once delivery.
//
// A Client owns one producer id and one WebSocket connection. Every event it
// publishes gets the producer's next pseq automatically. Publish may be
// called from many goroutines at once: the events are pipelined on the single
// connection (many in flight, acks matched by id) and always go on the wire
// in pseq order.
//
// When the connection breaks, the client redials with exponential backoff and
// re-sends every event it has no ack for, with the same producer and pseq, in
// pseq order. The host deduplicates re-sends (an ack with Duplicate set and
// the original seq), so each event is stored exactly once however often the
// connection fails. A Publish therefore only fails for a reason that retrying
// cannot fix (a *wire.Error with code bad_request, pseq_gap, too_large, ...),
// when its context ends, or when the client is closed.
//
// Persistent producers: a producer id names one sequence of events forever.
// A process that restarts with the same id (WithProducer) must continue its
// pseq where it stopped (WithStartPSeq); starting again at 1 would make the
// host treat the new events as re-sends of old ones and store nothing (the
// acks would carry Duplicate). Without WithProducer each Client gets a fresh
// random producer id and starts at pseq 1, which is always safe.
//
// Authentication: a host started with `nodb serve --tokens FILE` wants a
// bearer token (WithToken); Dial then fails with a *wire.Error of code
// "unauthorized" when the token is missing or unknown. A publish of an
// event type the token's scopes do not cover fails with code "forbidden"
// and is not stored; the Client then gives its later unfinished events the
// pseqs from there on (Future.PSeq reports the final one) and sends them
// again, so they are stored once, in order. For wss:// with a private CA, pass
// WithTLSConfig (or set SSL_CERT_FILE).
package client
