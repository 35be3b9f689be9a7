package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/filelog"
)

func logCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "log", Short: "Read the event log of a data directory"}
	var (
		data     string
		withHash bool
	)
	cat := &cobra.Command{
		Use:   "cat",
		Short: "Print every event as a JSON line",
		Long: `Print every event of the log in --data as one JSON object per line:
{"seq","producer","pseq","time","type","payload"} (with --hash, the chain hash
too). It only reads: a torn tail is reported on stderr, not cut, so it is safe
on the data directory of a running or crashed host.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			w := bufio.NewWriterSize(os.Stdout, 1<<16)
			defer w.Flush()
			enc := json.NewEncoder(w)
			enc.SetEscapeHTML(false)
			rep, err := filelog.Verify(data, func(r eventlog.Record) error {
				line := catLine{Seq: r.Seq, Producer: r.Producer, PSeq: r.PSeq, Time: time.Unix(0, r.Time).UTC().Format(time.RFC3339Nano), Type: r.Type, Payload: json.RawMessage(r.Payload)}
				if withHash {
					line.Hash = hex.EncodeToString(r.Hash[:])
				}
				return enc.Encode(&line)
			})
			if err != nil {
				return err
			}
			if rep.Torn != nil {
				fmt.Fprintf(os.Stderr, "nodb: note: %s has a torn tail of %d bytes at offset %d (%s); nodb serve will cut it on start\n", rep.Torn.Segment, rep.Torn.Bytes, rep.Torn.Offset, rep.Torn.Reason)
			}
			return nil
		},
	}
	cat.Flags().StringVar(&data, "data", "./data", "data directory")
	cat.Flags().BoolVar(&withHash, "hash", false, "include each record's chain hash")
	cmd.AddCommand(cat)
	return cmd
}

type catLine struct {
	Seq      uint64          `json:"seq"`
	Producer string          `json:"producer"`
	PSeq     uint64          `json:"pseq"`
	Time     string          `json:"time"`
	Type     string          `json:"type"`
	Payload  json.RawMessage `json:"payload"`
	Hash     string          `json:"hash,omitempty"`
}

func verifyCmd() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every CRC and the hash chain of a data directory's log",
		Long: `Read the whole log in --data and check every record's CRC32-C and the
SHA-256 hash chain. Exits 0 when the log is intact, 1 naming the first bad
record (file, offset, seq) when it is not. Read-only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := filelog.Verify(data, nil)
			if err != nil {
				var ce *filelog.CorruptError
				if errors.As(err, &ce) {
					return &exitError{code: 1, err: fmt.Errorf("log is damaged: first bad record in %s at offset %d (seq %d): %s", ce.File, ce.Offset, ce.Seq, ce.Reason)}
				}
				return err
			}
			out, _ := json.Marshal(rep)
			fmt.Println(string(out))
			if rep.Torn != nil {
				fmt.Fprintf(os.Stderr, "nodb: note: torn tail of %d bytes in %s at offset %d (an unacknowledged write cut short by a crash; nodb serve will cut it on start)\n", rep.Torn.Bytes, rep.Torn.Segment, rep.Torn.Offset)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "./data", "data directory")
	return cmd
}
