// Package sessionid mints and verifies gateway session ids.
//
// The broker mints an id on initialize; the router in Envoy verifies it on
// every request that names a session, without asking the broker.
//
// # Format
//
// Version 1, the only one today:
//
//	id      = base64url(payload) "." base64url(mac)
//	payload = version (1 byte: 1) | key id (1 byte) | issued-at (4 bytes) | random (16 bytes)
//	mac     = first 16 bytes of HMAC-SHA256(key, payload || principal)
//
// base64url is RFC 4648 §5 without padding, decoded strictly (one spelling
// per id); a version-1 id is Len (53) characters.
//
//   - version says how to read the rest. Verify refuses versions it does
//     not know. A later format (say, one carrying a session's state so that
//     any broker replica can recover it) is a new version with a payload of
//     its own layout and length; the bytes before the payload stay the
//     version, so both can be told apart and verified side by side.
//   - key id names the key of the ring that signed the id (KeyID: derived
//     from the key's bytes, so every replica and every restart agrees on it
//     without configuration); Verify tries only the keys with that id.
//   - issued-at is the minting broker's clock, big-endian Unix seconds. The
//     readers bound a session's lifetime with it (gateway.sessionMaxLifetime),
//     and the router ends the sessions of a broker that restarted (issued
//     before it started), both without a lookup.
//   - random is 128 bits from crypto/rand: the session's identity, which
//     revocations name.
//   - principal is who the id is bound to: the authenticated caller, ""
//     while the gateway authenticates nobody. It is in the MAC, not in the
//     id, so binding costs no bytes, and an id minted for one principal
//     does not verify for another.
//
// An id is unguessable and cannot be forged without a key of the ring, which
// the broker and the router both read from the config file. Ids of an
// unknown version or format simply do not verify: their clients get 404 and
// initialize again, as MCP clients must.
//
// # Key ring
//
// A Codec mints with its current key and verifies with it and with the
// previous keys of the ring: gateway.previousSessionKeys lets all replicas
// rotate the key deterministically. Rotate also keeps, for a grace period,
// the old current key of a Codec it replaces, for a key whose bytes change
// under a running process.
package sessionid

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"
)

const (
	// Version1 is the format this package mints.
	Version1 = 1

	payloadLen = 1 + 1 + 4 + RandomLen
	macLen     = 16
	// encoded lengths (base64 raw URL: 4 chars per 3 bytes, no padding)
	payloadEncLen = (payloadLen*8 + 5) / 6
	macEncLen     = (macLen*8 + 5) / 6
	// Len is the length of every id this package mints.
	Len = payloadEncLen + 1 + macEncLen
	// RandomLen is the length of the random part (Claims.Random).
	RandomLen = 16
	// MinKeyLen is the shortest accepted key.
	MinKeyLen = 32
)

var enc = base64.RawURLEncoding.Strict()

// Claims is what an id says about itself.
type Claims struct {
	Version byte
	KeyID   byte
	// IssuedAt is when the broker minted the id, in Unix seconds.
	IssuedAt int64
	// Random identifies the session.
	Random [RandomLen]byte
}

// Codec mints and verifies ids with a key ring. It is immutable and safe
// for concurrent use.
type Codec struct {
	keys []*ringKey // the current key first
}

// key is one key of the ring.
type ringKey struct {
	id     byte
	secret string
	// until, when not zero, ends the key's validity (Unix nanoseconds): an
	// old key kept for a grace period by Rotate.
	until int64
	macs  sync.Pool // of *signer; HMAC set-up costs more than the MAC itself
}

// signer pairs a keyed HMAC with its buffers, so that signing does not
// make them escape to the heap.
type signer struct {
	mac   hash.Hash
	chunk [64]byte // the principal is written through it
	sum   [sha256.Size]byte
}

// KeyID returns the key id of secret: the first byte of a SHA-256 of it
// (domain-separated from the MAC). Two keys of a ring may share an id; Verify
// then tries both.
func KeyID(secret []byte) byte {
	h := sha256.New()
	h.Write([]byte("mcpgw sessionid key id\x00"))
	h.Write(secret)
	var sum [sha256.Size]byte
	return h.Sum(sum[:0])[0]
}

// New returns a Codec that mints with current and verifies with current and
// each of previous. Every key must be at least MinKeyLen bytes.
func New(current []byte, previous ...[]byte) (*Codec, error) {
	return (*Codec)(nil).Rotate(time.Time{}, 0, current, previous...)
}

// Rotate returns the Codec for a new ring, as New, to replace c (which may be
// nil). If c's current key is not in the new ring, it keeps verifying until
// now+grace: an id minted just before a key changed under a running process
// stays valid for that long. Keys c itself kept that way keep verifying
// until their own end. Neither ever mints.
func (c *Codec) Rotate(now time.Time, grace time.Duration, current []byte, previous ...[]byte) (*Codec, error) {
	if len(current) < MinKeyLen {
		return nil, errors.New("session key must be at least 32 bytes")
	}
	n := &Codec{}
	n.add(string(current), 0)
	for i, p := range previous {
		if len(p) < MinKeyLen {
			return nil, fmt.Errorf("previous session key %d must be at least 32 bytes", i)
		}
		n.add(string(p), 0)
	}
	if c == nil {
		return n, nil
	}
	for i, k := range c.keys {
		switch {
		case i == 0 && grace > 0:
			n.add(k.secret, now.Add(grace).UnixNano())
		case i > 0 && k.until != 0 && k.until > now.UnixNano():
			n.add(k.secret, k.until)
		}
	}
	return n, nil
}

// add appends a key unless the ring has it already.
func (c *Codec) add(secret string, until int64) {
	for _, k := range c.keys {
		if k.secret == secret {
			return
		}
	}
	k := &ringKey{id: KeyID([]byte(secret)), secret: secret, until: until}
	mk := []byte(secret)
	k.macs.New = func() any { return &signer{mac: hmac.New(sha256.New, mk)} }
	c.keys = append(c.keys, k)
}

// verifying returns the number of keys that verify at the time of the call.
func (c *Codec) verifying() int {
	now := time.Now().UnixNano()
	n := 0
	for _, k := range c.keys {
		if k.until == 0 || now < k.until {
			n++
		}
	}
	return n
}

// Mint returns a new id for principal, issued now.
func (c *Codec) Mint(principal string) string {
	return c.MintAt(time.Now(), principal)
}

// MintAt returns a new id for principal, issued at issuedAt (whole seconds;
// the broker never back-dates, see broker.mintSessionID).
func (c *Codec) MintAt(issuedAt time.Time, principal string) string {
	k := c.keys[0]
	var p [payloadLen]byte
	p[0], p[1] = Version1, k.id
	binary.BigEndian.PutUint32(p[2:6], uint32(issuedAt.Unix()))
	_, _ = rand.Read(p[6:]) // never fails on supported platforms
	var buf [Len]byte
	enc.Encode(buf[:payloadEncLen], p[:])
	buf[payloadEncLen] = '.'
	var sum [macLen]byte
	k.sign(&p, principal, &sum)
	enc.Encode(buf[payloadEncLen+1:], sum[:])
	return string(buf[:])
}

// Verify reports whether id was minted for principal with a key of the ring
// that still verifies, and returns its claims. It does not allocate.
func (c *Codec) Verify(id, principal string) (Claims, bool) {
	p, mac, ok := decode(id)
	if !ok {
		return Claims{}, false
	}
	var now int64
	for _, k := range c.keys {
		if k.id != p[1] {
			continue
		}
		if k.until != 0 {
			if now == 0 {
				now = time.Now().UnixNano()
			}
			if now >= k.until {
				continue
			}
		}
		var sum [macLen]byte
		k.sign(&p, principal, &sum)
		if hmac.Equal(sum[:], mac[:]) {
			return claimsOf(&p), true
		}
	}
	return Claims{}, false
}

// Parse returns the claims of an id of a known format without verifying its
// MAC: for ids from a trusted source (the broker's revocation feed), never
// for a client's.
func Parse(id string) (Claims, bool) {
	p, _, ok := decode(id)
	if !ok {
		return Claims{}, false
	}
	return claimsOf(&p), true
}

// decode splits a version-1 id into its payload and MAC.
func decode(id string) (p [payloadLen]byte, mac [macLen]byte, ok bool) {
	if len(id) != Len || id[payloadEncLen] != '.' {
		return p, mac, false
	}
	var src [Len]byte // a stack copy: converting the string would allocate
	copy(src[:], id)
	var pb [payloadLen + 2]byte // the decoder may need slack
	n, err := enc.Decode(pb[:], src[:payloadEncLen])
	if err != nil || n != payloadLen || pb[0] != Version1 {
		return p, mac, false
	}
	var mb [macLen + 2]byte
	n, err = enc.Decode(mb[:], src[payloadEncLen+1:])
	if err != nil || n != macLen {
		return p, mac, false
	}
	copy(p[:], pb[:payloadLen])
	copy(mac[:], mb[:macLen])
	return p, mac, true
}

func claimsOf(p *[payloadLen]byte) Claims {
	c := Claims{Version: p[0], KeyID: p[1], IssuedAt: int64(binary.BigEndian.Uint32(p[2:6]))}
	copy(c.Random[:], p[6:])
	return c
}

// sign computes the MAC of payload || principal.
func (k *ringKey) sign(payload *[payloadLen]byte, principal string, out *[macLen]byte) {
	s := k.macs.Get().(*signer)
	s.mac.Reset()
	n := copy(s.chunk[:], payload[:])
	s.mac.Write(s.chunk[:n])
	for len(principal) > 0 {
		n = copy(s.chunk[:], principal)
		s.mac.Write(s.chunk[:n])
		principal = principal[n:]
	}
	s.mac.Sum(s.sum[:0])
	copy(out[:], s.sum[:])
	k.macs.Put(s)
}
