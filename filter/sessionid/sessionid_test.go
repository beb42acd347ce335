package sessionid

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/testenv"
)

var key = bytes.Repeat([]byte("k"), 32)

func TestMintVerify(t *testing.T) {
	c, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	id := c.Mint()
	if len(id) != Len {
		t.Fatalf("len %d, want %d", len(id), Len)
	}
	if !c.Valid(id) {
		t.Fatalf("minted id %q not valid", id)
	}
	if c.Mint() == id {
		t.Fatal("two mints gave the same id")
	}
	other, _ := New(bytes.Repeat([]byte("x"), 32))
	if other.Valid(id) {
		t.Fatal("id valid under another key")
	}
	forged := id[:Len-2] + "AA"
	if forged != id && c.Valid(forged) {
		t.Fatal("forged id accepted")
	}
	for _, bad := range []string{"", "abc", strings.Repeat("a", Len), id + "x", "!" + id[1:]} {
		if c.Valid(bad) {
			t.Errorf("Valid(%q) = true", bad)
		}
	}
}

func TestShortKey(t *testing.T) {
	if _, err := New([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestValidDoesNotAllocate(t *testing.T) {
	testenv.SkipUnderRace(t)
	c, _ := New(key)
	id := c.Mint()
	if n := testing.AllocsPerRun(100, func() { c.Valid(id) }); n != 0 {
		t.Fatalf("Valid allocates %v times", n)
	}
}

func BenchmarkValid(b *testing.B) {
	c, _ := New(key)
	id := c.Mint()
	b.ReportAllocs()
	for b.Loop() {
		if !c.Valid(id) {
			b.Fatal("invalid")
		}
	}
}
