package plugins

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/nodb-dev/nodb/abi"
)

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// signature is a function type.
type signature struct{ params, results []api.ValueType }

func sig(params []api.ValueType, results ...api.ValueType) signature {
	return signature{params: params, results: results}
}

func (s signature) String() string {
	names := func(ts []api.ValueType) string {
		var b []string
		for _, t := range ts {
			b = append(b, api.ValueTypeName(t))
		}
		return "(" + strings.Join(b, ",") + ")"
	}
	return names(s.params) + "->" + names(s.results)
}

func (s signature) matches(d api.FunctionDefinition) bool {
	return slices.Equal(s.params, d.ParamTypes()) && slices.Equal(s.results, d.ResultTypes())
}

// requiredExports are the function exports of ABI v1 with their types.
var requiredExports = map[string]signature{
	abi.ExportBuffer: sig([]api.ValueType{i32}, i32),
	abi.ExportReduce: sig([]api.ValueType{i32}, i32),
}

// forbiddenWASIHint explains the most common refused WASI imports.
func forbiddenWASIHint(name string) string {
	switch {
	case strings.HasPrefix(name, "path_"), strings.HasPrefix(name, "fd_"):
		return "plugins have no file system"
	case strings.HasPrefix(name, "sock_"):
		return "plugins have no network"
	}
	return "not in the permitted WASI subset"
}

// validate checks a compiled module against ABI v1 and returns its memory
// minimum in pages.
func validate(cm wazero.CompiledModule, maxPages uint32) (uint32, error) {
	if len(cm.ImportedMemories()) > 0 {
		return 0, errInvalid("the module imports its memory; it must define and export \"memory\"", nil)
	}
	mems := cm.ExportedMemories()
	md, ok := mems[abi.ExportMemory]
	if !ok {
		return 0, errInvalid("missing export \"memory\"", nil)
	}
	if md.Min() > maxPages {
		return 0, errInvalid(fmt.Sprintf("memory minimum of %d pages is over the cap of %d pages", md.Min(), maxPages), nil)
	}
	exports := cm.ExportedFunctions()
	for _, name := range []string{abi.ExportBuffer, abi.ExportReduce} {
		d, ok := exports[name]
		if !ok {
			return 0, errInvalid(fmt.Sprintf("missing export %q", name), nil)
		}
		if want := requiredExports[name]; !want.matches(d) {
			return 0, errInvalid(fmt.Sprintf("export %q has type %s, want %s", name, sigOf(d), want), nil)
		}
	}
	if d, ok := exports[abi.ExportInitialize]; ok && !sig(nil).matches(d) {
		return 0, errInvalid(fmt.Sprintf("export %q has type %s, want ()->()", abi.ExportInitialize, sigOf(d)), nil)
	}
	hasVersion := false
	for _, d := range cm.ImportedFunctions() {
		mod, name, _ := d.Import()
		switch {
		case mod == abi.ModuleName:
			want, ok := nodbFuncs[name]
			if !ok {
				if strings.HasPrefix(name, "abi_version_") {
					return 0, errInvalid(fmt.Sprintf("imports %s.%s: built for another ABI version than %d", mod, name, abi.Version), ErrABIVersion)
				}
				return 0, errInvalid(fmt.Sprintf("unknown host function %s.%s", mod, name), nil)
			}
			if !want.matches(d) {
				return 0, errInvalid(fmt.Sprintf("host function %s.%s imported with type %s, want %s", mod, name, sigOf(d), want), nil)
			}
			if name == abi.FuncABIVersion {
				hasVersion = true
			}
		case mod == abi.WASIModuleName:
			want, ok := wasiFuncs[name]
			if !ok {
				return 0, errInvalid(fmt.Sprintf("forbidden WASI import %s.%s (%s)", mod, name, forbiddenWASIHint(name)), nil)
			}
			if !want.matches(d) {
				return 0, errInvalid(fmt.Sprintf("WASI function %s.%s imported with type %s, want %s", mod, name, sigOf(d), want), nil)
			}
		case strings.HasPrefix(mod, "nodb_v"):
			return 0, errInvalid(fmt.Sprintf("imports module %q: built for another ABI version than %d", mod, abi.Version), ErrABIVersion)
		default:
			return 0, errInvalid(fmt.Sprintf("unknown import module %q (function %s)", mod, name), nil)
		}
	}
	if !hasVersion {
		return 0, errInvalid(fmt.Sprintf("does not import %s.%s: not a nodb plugin, or built for another ABI version", abi.ModuleName, abi.FuncABIVersion), ErrABIVersion)
	}
	return md.Min(), nil
}

func sigOf(d api.FunctionDefinition) signature {
	return signature{params: d.ParamTypes(), results: d.ResultTypes()}
}
