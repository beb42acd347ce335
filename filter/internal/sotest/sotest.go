// Package sotest reads the dynamic symbol table of an ELF shared object or
// executable (the adapters' .so files, an Envoy binary) with debug/elf, for
// the adapters' symbol tests: what a module exports and imports, and the
// newest glibc its imports need. No nm or objdump is involved, so the
// checks cannot be skipped for want of binutils.
package sotest

import (
	"debug/elf"
	"strconv"
	"strings"
)

// Symbols is a file's dynamic symbol table.
type Symbols struct {
	// Defined are the functions the file exports (nm -D: "T").
	Defined map[string]bool
	// Undefined are the symbols it imports (nm -D: "U").
	Undefined map[string]bool
	// NewestGlibc is the newest GLIBC_x.y version its imports require, ""
	// when none.
	NewestGlibc string
}

// Read reads file's dynamic symbols.
func Read(file string) (*Symbols, error) {
	f, err := elf.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return nil, err
	}
	s := &Symbols{Defined: map[string]bool{}, Undefined: map[string]bool{}}
	for _, sym := range syms {
		switch {
		case sym.Section == elf.SHN_UNDEF:
			s.Undefined[sym.Name] = true
			if v, ok := strings.CutPrefix(sym.Version, "GLIBC_"); ok && VersionLess(s.NewestGlibc, v) {
				s.NewestGlibc = v
			}
		case elf.ST_TYPE(sym.Info) == elf.STT_FUNC:
			s.Defined[sym.Name] = true
		}
	}
	return s, nil
}

// VersionLess compares dotted versions numerically ("2.9" < "2.17"); ""
// is less than any version.
func VersionLess(a, b string) bool {
	if a == "" || b == "" {
		return a == "" && b != ""
	}
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}
