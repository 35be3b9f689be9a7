package server

import (
	"context"
	"net/http"
	"sort"
	"strconv"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/statetree"
	"github.com/nodb-dev/nodb/host/view"
)

// handleViews lists the views the principal may read.
func (s *Server) handleViews(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	s.hubsMu.RLock()
	out := make([]view.Status, 0, len(s.hubs))
	for name, h := range s.hubs {
		if p.CanRead(name) {
			out = append(out, h.v.Status())
		}
	}
	s.hubsMu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"views": out})
}

// lookupView finds the hub of the request's path's view if the principal
// may read it; otherwise it answers 403 or 404 and returns nil. The scope is
// checked first, so a refusal does not tell whether the view exists.
func (s *Server) lookupView(w http.ResponseWriter, r *http.Request) *hub {
	name := r.PathValue("name")
	if p := principal(r); !p.CanRead(name) {
		s.refuse(w, r, p, p.CheckRead(name))
		return nil
	}
	h := s.hub(name)
	if h == nil {
		httpError(w, http.StatusNotFound, wire.Errorf(wire.CodeNotFound, "no view named %q; GET /v1/views lists the views", name))
		return nil
	}
	return h
}

func (s *Server) handleView(w http.ResponseWriter, r *http.Request) {
	if hb := s.lookupView(w, r); hb != nil {
		writeJSON(w, http.StatusOK, hb.v.Status())
	}
}

// handleViewState serves GET /v1/views/{name}/state[?path=/json/pointer][&at=SEQ]:
// the whole state tree or the value at path, with the seq it reflects in the
// X-Nodb-Seq header. With at, the state as of that seq (time travel).
func (s *Server) handleViewState(w http.ResponseWriter, r *http.Request) {
	hb := s.lookupView(w, r)
	if hb == nil {
		return
	}
	v := hb.v
	root, seq := v.State()
	if at := r.URL.Query().Get("at"); at != "" {
		n, err := strconv.ParseUint(at, 10, 64)
		if err != nil {
			httpError(w, http.StatusBadRequest, wire.Errorf(wire.CodeBadRequest, "at=%q: want a seq (a non-negative integer)", at))
			return
		}
		if n > seq {
			if st := v.Status(); st.Phase == view.PhaseHalted {
				// Waiting will not help: the view goes no further until
				// a fixed version replaces its reducer.
				httpError(w, http.StatusNotFound, wire.Errorf(wire.CodeNotFound, "view %q is halted: its reducer failed at seq %d (%s), so it has applied events up to seq %d only and will not reach seq %d until a fixed version is activated (POST /v1/views/%s/activate)", v.Name(), st.HaltedAt, st.Error, seq, n, v.Name()))
				return
			}
			httpError(w, http.StatusNotFound, wire.Errorf(wire.CodeNotFound, "view %q has applied events up to seq %d; seq %d is not reached yet", v.Name(), seq, n))
			return
		}
		if n != seq { // else root is that state
			if root, err = s.stateAt(r.Context(), v, n); err != nil {
				httpError(w, http.StatusServiceUnavailable, wire.Errorf(wire.CodeUnavailable, "state of %q at seq %d: %v", v.Name(), n, err))
				return
			}
			seq = n
		}
	}
	val := root
	if p := r.URL.Query().Get("path"); p != "" && p != "/" {
		path, err := statetree.ParsePath(p)
		if err != nil {
			httpError(w, http.StatusBadRequest, wire.Errorf(wire.CodeBadRequest, "path %q: %v (use a JSON Pointer such as /todos/a1)", p, err))
			return
		}
		var ok bool
		if val, ok = root.Get(path); !ok {
			httpError(w, http.StatusNotFound, wire.Errorf(wire.CodeNotFound, "view %q has no value at %s (as of seq %d)", v.Name(), p, seq))
			return
		}
	}
	// The value is immutable and named by its Merkle hash: that is its ETag,
	// and the key of the hub's cached encoding, so readers polling a view
	// that did not change cost neither a re-encoding nor a body.
	h := val.Hash()
	etag := `"` + h.String() + `"`
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Nodb-Seq", strconv.FormatUint(seq, 10))
	w.Header().Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == etag || inm == "*") {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(hb.stateJSON(val, h))
}

// stateJSON returns the JSON of val, whose hash is h, from the hub's
// one-entry cache of the last value read over HTTP.
func (h *hub) stateJSON(val statetree.Value, hash statetree.Hash) []byte {
	h.jsonMu.Lock()
	defer h.jsonMu.Unlock()
	if h.jsonBody != nil && h.jsonHash == hash {
		return h.jsonBody
	}
	h.jsonBody, h.jsonHash = val.AppendJSON(nil), hash
	return h.jsonBody
}

// stateAt returns v's state as of the past seq. At most
// Config.MaxPastStateReads requests compute one at a time: a client sending
// many would otherwise make as many reducer instances replay history at
// once. A request waiting its turn gives up when its client goes.
func (s *Server) stateAt(ctx context.Context, v *view.View, seq uint64) (statetree.Value, error) {
	select {
	case s.pastReads <- struct{}{}:
		defer func() { <-s.pastReads }()
	case <-ctx.Done():
		return statetree.Value{}, ctx.Err()
	}
	return v.StateAt(ctx, seq)
}
