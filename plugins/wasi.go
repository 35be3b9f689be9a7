package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/binary"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nodb-dev/nodb/abi"
)

// WASI preview 1 errno values used here.
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
)

// wasiFuncs is the permitted WASI subset (ABI.md, "WASI"): what a Go
// wasip1 reactor imports, made deterministic and capability-free. Anything
// else (path_open, sock_accept, fd_readdir, ...) is refused at load.
var wasiFuncs = map[string]signature{
	"args_get":            sig([]api.ValueType{i32, i32}, i32),
	"args_sizes_get":      sig([]api.ValueType{i32, i32}, i32),
	"environ_get":         sig([]api.ValueType{i32, i32}, i32),
	"environ_sizes_get":   sig([]api.ValueType{i32, i32}, i32),
	"clock_res_get":       sig([]api.ValueType{i32, i32}, i32),
	"clock_time_get":      sig([]api.ValueType{i32, i64, i32}, i32),
	"fd_write":            sig([]api.ValueType{i32, i32, i32, i32}, i32),
	"fd_read":             sig([]api.ValueType{i32, i32, i32, i32}, i32),
	"fd_close":            sig([]api.ValueType{i32}, i32),
	"fd_fdstat_get":       sig([]api.ValueType{i32, i32}, i32),
	"fd_fdstat_set_flags": sig([]api.ValueType{i32, i32}, i32),
	"fd_prestat_get":      sig([]api.ValueType{i32, i32}, i32),
	"fd_prestat_dir_name": sig([]api.ValueType{i32, i32, i32}, i32),
	"poll_oneoff":         sig([]api.ValueType{i32, i32, i32, i32}, i32),
	"proc_exit":           sig([]api.ValueType{i32}),
	"random_get":          sig([]api.ValueType{i32, i32}, i32),
	"sched_yield":         sig(nil, i32),
}

var wasiImpl = map[string]api.GoModuleFunc{
	"args_get":            wasiZeroPair,
	"args_sizes_get":      wasiSizesGet,
	"environ_get":         wasiZeroPair,
	"environ_sizes_get":   wasiSizesGet,
	"clock_res_get":       wasiClockResGet,
	"clock_time_get":      wasiClockTimeGet,
	"fd_write":            wasiFdWrite,
	"fd_read":             wasiFdRead,
	"fd_close":            wasiErrno(errnoBadf),
	"fd_fdstat_get":       wasiFdstatGet,
	"fd_fdstat_set_flags": wasiFdstatSetFlags,
	"fd_prestat_get":      wasiErrno(errnoBadf),
	"fd_prestat_dir_name": wasiErrno(errnoBadf),
	"poll_oneoff":         wasiPollOneoff,
	"proc_exit":           wasiProcExit,
	"random_get":          wasiRandomGet,
	"sched_yield":         wasiErrno(errnoSuccess),
}

func errno(stack []uint64, e uint32) { stack[0] = uint64(e) }

func wasiErrno(e uint32) api.GoModuleFunc {
	return func(_ context.Context, _ api.Module, stack []uint64) { errno(stack, e) }
}

// args_get / environ_get: there are none, nothing to write.
func wasiZeroPair(_ context.Context, _ api.Module, stack []uint64) { errno(stack, errnoSuccess) }

// args_sizes_get / environ_sizes_get: zero entries of zero bytes.
func wasiSizesGet(_ context.Context, mod api.Module, stack []uint64) {
	m := mod.Memory()
	if !m.WriteUint32Le(api.DecodeU32(stack[0]), 0) || !m.WriteUint32Le(api.DecodeU32(stack[1]), 0) {
		errno(stack, errnoFault)
		return
	}
	errno(stack, errnoSuccess)
}

func wasiClockResGet(_ context.Context, mod api.Module, stack []uint64) {
	if !mod.Memory().WriteUint64Le(api.DecodeU32(stack[1]), 1) {
		errno(stack, errnoFault)
		return
	}
	errno(stack, errnoSuccess)
}

// clock_time_get: every clock reads the current event's time. The monotonic
// clock never goes backwards within an instance (it is the largest event
// time seen so far by this instance, which is deterministic because
// instances are re-created at epoch boundaries).
func wasiClockTimeGet(ctx context.Context, mod api.Module, stack []uint64) {
	i := instanceOf(ctx)
	id := api.DecodeU32(stack[0])
	t := i.clock
	if id != 0 { // monotonic, process and thread CPU time
		t = i.monotonic
	}
	if id > 3 {
		errno(stack, errnoInval)
		return
	}
	if !mod.Memory().WriteUint64Le(api.DecodeU32(stack[2]), uint64(t)) {
		errno(stack, errnoFault)
		return
	}
	errno(stack, errnoSuccess)
}

// random_get: a ChaCha8 stream seeded from (view, seq) for an event, or
// (view, epoch) during _initialize; seeded lazily on first use.
func wasiRandomGet(ctx context.Context, mod api.Module, stack []uint64) {
	i := instanceOf(ctx)
	b, ok := mod.Memory().Read(api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	if !ok {
		errno(stack, errnoFault)
		return
	}
	if !i.rngSeeded {
		i.rng.Seed(randomSeed(i.cfg.View, i.rngKind, i.rngNum))
		i.rngSeeded = true
	}
	_, _ = i.rng.Read(b)
	errno(stack, errnoSuccess)
}

// randomSeed is SHA-256("nodb/v1/random" 0x00 view 0x00 kind u64be(n)) where
// kind is 'e' for an event (n = seq) and 'i' for _initialize (n = epoch).
func randomSeed(view string, kind byte, n uint64) [32]byte {
	h := sha256.New()
	h.Write([]byte("nodb/v1/random\x00"))
	h.Write([]byte(view))
	var b [10]byte
	b[0], b[1] = 0, kind
	binary.BigEndian.PutUint64(b[2:], n)
	h.Write(b[:])
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// maxFdWrite bounds the bytes one fd_write takes (ABI.md 9.2): the rest is
// a short write. A host function runs out of reach of the time limit (only
// guest code checks the stop flag), and n iovecs of the whole memory would
// otherwise be n times its size.
const maxFdWrite = 16 << 20

// fd_write: fds 1 and 2 go to the plugin's log, line by line, rate limited.
func wasiFdWrite(ctx context.Context, mod api.Module, stack []uint64) {
	i := instanceOf(ctx)
	fd := api.DecodeU32(stack[0])
	iovs, n, resultPtr := api.DecodeU32(stack[1]), api.DecodeU32(stack[2]), api.DecodeU32(stack[3])
	if fd != 1 && fd != 2 {
		errno(stack, errnoBadf)
		return
	}
	m := mod.Memory()
	vec, ok := m.Read(iovs, n*8)
	if !ok || n > 1<<20 {
		errno(stack, errnoFault)
		return
	}
	total := uint32(0)
	for k := uint32(0); k < n && total < maxFdWrite; k++ {
		p := binary.LittleEndian.Uint32(vec[k*8:])
		l := binary.LittleEndian.Uint32(vec[k*8+4:])
		b, ok := m.Read(p, l)
		if !ok {
			errno(stack, errnoFault)
			return
		}
		b = b[:min(l, maxFdWrite-total)]
		i.out.write(int(fd), b)
		total += uint32(len(b))
	}
	if !m.WriteUint32Le(resultPtr, total) {
		errno(stack, errnoFault)
		return
	}
	errno(stack, errnoSuccess)
}

// fd_read: stdin is empty (EOF); no other fd exists.
func wasiFdRead(_ context.Context, mod api.Module, stack []uint64) {
	if api.DecodeU32(stack[0]) != 0 {
		errno(stack, errnoBadf)
		return
	}
	if !mod.Memory().WriteUint32Le(api.DecodeU32(stack[3]), 0) {
		errno(stack, errnoFault)
		return
	}
	errno(stack, errnoSuccess)
}

// fd_fdstat_get: fds 0-2 are character devices; nothing else exists.
func wasiFdstatGet(_ context.Context, mod api.Module, stack []uint64) {
	fd := api.DecodeU32(stack[0])
	if fd > 2 {
		errno(stack, errnoBadf)
		return
	}
	var st [24]byte
	st[0] = 2 // character_device
	rights := uint64(1 << 6)
	if fd == 0 {
		rights = 1 << 1
	}
	binary.LittleEndian.PutUint64(st[8:], rights)
	if !mod.Memory().Write(api.DecodeU32(stack[1]), st[:]) {
		errno(stack, errnoFault)
		return
	}
	errno(stack, errnoSuccess)
}

func wasiFdstatSetFlags(_ context.Context, _ api.Module, stack []uint64) {
	if api.DecodeU32(stack[0]) > 2 {
		errno(stack, errnoBadf)
		return
	}
	errno(stack, errnoSuccess)
}

// poll_oneoff: time does not pass during an event, so every clock
// subscription fires at once; fd subscriptions report EBADF.
func wasiPollOneoff(_ context.Context, mod api.Module, stack []uint64) {
	in, out, n, neventsPtr := api.DecodeU32(stack[0]), api.DecodeU32(stack[1]), api.DecodeU32(stack[2]), api.DecodeU32(stack[3])
	m := mod.Memory()
	if n == 0 || n > 1<<16 {
		errno(stack, errnoInval)
		return
	}
	subs, ok1 := m.Read(in, n*48)
	evs, ok2 := m.Read(out, n*32)
	if !ok1 || !ok2 {
		errno(stack, errnoFault)
		return
	}
	for k := uint32(0); k < n; k++ {
		s, e := subs[k*48:], evs[k*32:k*32+32]
		clear(e)
		copy(e[0:8], s[0:8]) // userdata
		tag := s[8]
		e[10] = tag
		if tag != 0 {
			binary.LittleEndian.PutUint16(e[8:], errnoBadf)
		}
	}
	if !m.WriteUint32Le(neventsPtr, n) {
		errno(stack, errnoFault)
		return
	}
	errno(stack, errnoSuccess)
}

// proc_exit ends the guest: the module is closed and the call fails with a
// *sys.ExitError, which Reduce reports as a TrapError. A Go panic ends here.
func wasiProcExit(ctx context.Context, mod api.Module, stack []uint64) {
	code := api.DecodeU32(stack[0])
	i := instanceOf(ctx)
	i.exited = true
	_ = mod.CloseWithExitCode(ctx, code)
	panic(sys.NewExitError(code))
}

var _ = abi.WASIModuleName
