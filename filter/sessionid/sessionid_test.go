package sessionid

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/testenv"
)

var (
	key   = bytes.Repeat([]byte("k"), 32)
	other = bytes.Repeat([]byte("x"), 32)
	third = bytes.Repeat([]byte("3"), 40)
)

func mustNew(t testing.TB, current []byte, previous ...[]byte) *Codec {
	t.Helper()
	c, err := New(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMintVerify(t *testing.T) {
	c := mustNew(t, key)
	before := time.Now().Unix()
	id := c.Mint("")
	if len(id) != Len {
		t.Fatalf("len %d, want %d", len(id), Len)
	}
	claims, ok := c.Verify(id, "")
	if !ok {
		t.Fatalf("minted id %q not valid", id)
	}
	if claims.Version != Version1 || claims.KeyID != KeyID(key) ||
		claims.IssuedAt < before || claims.IssuedAt > time.Now().Unix() {
		t.Fatalf("claims %+v", claims)
	}
	if parsed, ok := Parse(id); !ok || parsed != claims {
		t.Fatalf("Parse = %+v, %v; want %+v", parsed, ok, claims)
	}
	if c.Mint("") == id {
		t.Fatal("two mints gave the same id")
	}
	if _, ok := mustNew(t, other).Verify(id, ""); ok {
		t.Fatal("id valid under another key")
	}
	forged := id[:Len-2] + "AA"
	if _, ok := c.Verify(forged, ""); forged != id && ok {
		t.Fatal("forged id accepted")
	}
	for _, bad := range []string{"", "abc", strings.Repeat("a", Len), id + "x", "!" + id[1:]} {
		if _, ok := c.Verify(bad, ""); ok {
			t.Errorf("Verify(%q) = true", bad)
		}
	}
}

// The layout is the documented one, byte for byte.
func TestFormat(t *testing.T) {
	c := mustNew(t, key)
	at := time.Unix(1_800_000_000, 0)
	id := c.MintAt(at, "")
	payload, mac, ok := strings.Cut(id, ".")
	if !ok || len(payload) != 30 || len(mac) != 22 {
		t.Fatalf("id %q: want 30 chars, '.', 22 chars", id)
	}
	p, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || len(p) != 22 {
		t.Fatalf("payload %q: %v", p, err)
	}
	if p[0] != 1 || p[1] != KeyID(key) || string(p[2:6]) != "\x6b\x49\xd2\x00" {
		t.Fatalf("payload header % x", p[:6])
	}
}

// An id minted for one principal does not verify for another, and the
// principal costs no bytes.
func TestPrincipalBinding(t *testing.T) {
	c := mustNew(t, key)
	long := strings.Repeat("p", 200) // longer than the signer's chunk
	for _, principal := range []string{"", "alice", long} {
		id := c.Mint(principal)
		if len(id) != Len {
			t.Fatalf("len %d for principal %q", len(id), principal)
		}
		if _, ok := c.Verify(id, principal); !ok {
			t.Errorf("id for %q does not verify for it", principal)
		}
		for _, q := range []string{"", "alice", "bob", long, long + "x"} {
			if _, ok := c.Verify(id, q); ok && q != principal {
				t.Errorf("id for %q verifies for %q", principal, q)
			}
		}
	}
}

// Ids do not have several spellings: the strict decoder refuses non-zero
// padding bits, so a client cannot make "another" session of its own.
func TestOneSpelling(t *testing.T) {
	c := mustNew(t, key)
	id := c.Mint("")
	last := id[Len-1]
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range alphabet {
		if alphabet[i] == last {
			continue
		}
		variant := id[:Len-1] + alphabet[i:i+1]
		if _, ok := c.Verify(variant, ""); ok {
			t.Fatalf("variant %q of %q verifies", variant, id)
		}
	}
}

func TestUnknownVersion(t *testing.T) {
	c := mustNew(t, key)
	p, _ := base64.RawURLEncoding.DecodeString(strings.Split(c.Mint(""), ".")[0])
	p[0] = 2
	id := base64.RawURLEncoding.EncodeToString(p) + "." + strings.Repeat("A", 22)
	if _, ok := c.Verify(id, ""); ok {
		t.Fatal("version 2 accepted")
	}
	if _, ok := Parse(id); ok {
		t.Fatal("Parse accepted version 2")
	}
}

// The ring: the current key mints, previous keys verify, a key outside it
// does not; the key id picks the key.
func TestKeyRing(t *testing.T) {
	oldC := mustNew(t, other)
	ring := mustNew(t, key, other, third)
	for _, signer := range []*Codec{oldC, mustNew(t, third), ring} {
		if _, ok := ring.Verify(signer.Mint(""), ""); !ok {
			t.Errorf("ring does not verify an id of one of its keys")
		}
	}
	claims, _ := ring.Verify(ring.Mint(""), "")
	if claims.KeyID != KeyID(key) {
		t.Errorf("ring mints with key id %d, want the current key's %d", claims.KeyID, KeyID(key))
	}
	if _, ok := oldC.Verify(ring.Mint(""), ""); ok {
		t.Error("an id of the new current key verifies under the old key alone")
	}
	if _, err := New(key, []byte("short")); err == nil {
		t.Error("short previous key accepted")
	}
}

// Rotate keeps the old current key for the grace period only, never to
// mint, and drops it once the grace is over; config-listed keys have no end.
func TestRotateGrace(t *testing.T) {
	oldC := mustNew(t, key)
	id := oldC.Mint("")
	now := time.Now()
	next, err := oldC.Rotate(now, time.Hour, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := next.Verify(id, ""); !ok {
		t.Fatal("old current key not kept for the grace period")
	}
	if c, _ := next.Verify(next.Mint(""), ""); c.KeyID != KeyID(other) {
		t.Fatal("rotated codec does not mint with the new key")
	}
	// The grace survives further rotations, to its own end.
	again, _ := next.Rotate(now.Add(time.Minute), time.Hour, other)
	if _, ok := again.Verify(id, ""); !ok {
		t.Fatal("grace key lost on a rotation that kept the current key")
	}
	if again.verifying() != 2 {
		t.Fatalf("%d keys verify, want 2", again.verifying())
	}
	// Past the end: a grace that ended in the past.
	ended, _ := oldC.Rotate(now.Add(-2*time.Hour), time.Hour, other)
	if _, ok := ended.Verify(id, ""); ok {
		t.Fatal("old key verifies after its grace period")
	}
	if ended.verifying() != 1 {
		t.Fatalf("%d keys verify, want 1", ended.verifying())
	}
	later, _ := ended.Rotate(now, time.Hour, other)
	if _, ok := later.Verify(id, ""); ok {
		t.Fatal("an ended grace key came back on rotation")
	}
	none, _ := oldC.Rotate(now, 0, other)
	if _, ok := none.Verify(id, ""); ok {
		t.Fatal("no grace period, yet the old key verifies")
	}
}

func TestShortKey(t *testing.T) {
	if _, err := New([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestVerifyDoesNotAllocate(t *testing.T) {
	testenv.SkipUnderRace(t)
	graced, _ := mustNew(t, other).Rotate(time.Now(), time.Hour, key)
	for name, c := range map[string]*Codec{"one key": mustNew(t, key), "ring": mustNew(t, key, other, third), "graced": graced} {
		for _, principal := range []string{"", strings.Repeat("p", 100)} {
			id := mustNew(t, other).Mint(principal)
			if n := testing.AllocsPerRun(100, func() { c.Verify(id, principal) }); n != 0 {
				t.Errorf("%s: Verify allocates %v times", name, n)
			}
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	c := mustNew(b, key, other)
	id := c.Mint("")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Verify(id, ""); !ok {
			b.Fatal("invalid")
		}
	}
}
