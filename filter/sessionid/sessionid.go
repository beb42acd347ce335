// Package sessionid mints and verifies gateway session ids.
//
// The broker mints an id on initialize; the router in Envoy verifies it on
// every routed call without asking the broker. An id is
//
//	base64url(16 random bytes) "." base64url(first 16 bytes of HMAC-SHA256(key, random))
//
// so it is unguessable and cannot be forged without the key both read from
// the config file.
package sessionid

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"sync"
)

const (
	randomLen = 16
	macLen    = 16
	// encoded lengths (base64 raw URL: 4 chars per 3 bytes, no padding)
	randomEncLen = (randomLen*8 + 5) / 6
	macEncLen    = (macLen*8 + 5) / 6
	// Len is the length of every id this package mints.
	Len = randomEncLen + 1 + macEncLen
	// MinKeyLen is the shortest accepted key.
	MinKeyLen = 32
)

var enc = base64.RawURLEncoding

// Codec mints and verifies ids with one key. It is safe for concurrent use.
type Codec struct {
	macs sync.Pool // of *signer; HMAC set-up costs more than the MAC itself
}

// signer pairs a keyed HMAC with its output buffer, so that signing does not
// make the buffer escape to the heap.
type signer struct {
	mac hash.Hash
	msg [randomLen]byte
	sum [sha256.Size]byte
}

// New returns a Codec for key, which must be at least MinKeyLen bytes.
func New(key []byte) (*Codec, error) {
	if len(key) < MinKeyLen {
		return nil, errors.New("session key must be at least 32 bytes")
	}
	k := append([]byte(nil), key...)
	c := &Codec{}
	c.macs.New = func() any { return &signer{mac: hmac.New(sha256.New, k)} }
	return c, nil
}

// Mint returns a new random, signed id.
func (c *Codec) Mint() string {
	var buf [Len]byte
	var random [randomLen]byte
	_, _ = rand.Read(random[:]) // never fails on supported platforms
	enc.Encode(buf[:randomEncLen], random[:])
	buf[randomEncLen] = '.'
	var sum [macLen]byte
	c.sign(&random, &sum)
	enc.Encode(buf[randomEncLen+1:], sum[:])
	return string(buf[:])
}

// Valid reports whether id was minted with this Codec's key. It does not
// allocate.
func (c *Codec) Valid(id string) bool {
	if len(id) != Len || id[randomEncLen] != '.' {
		return false
	}
	var src [Len]byte // a stack copy: converting the string would allocate
	copy(src[:], id)
	var random [randomLen + 2]byte // the decoder may need slack
	n, err := enc.Decode(random[:], src[:randomEncLen])
	if err != nil || n != randomLen {
		return false
	}
	var got [macLen + 2]byte
	n, err = enc.Decode(got[:], src[randomEncLen+1:])
	if err != nil || n != macLen {
		return false
	}
	var sum [macLen]byte
	c.sign((*[randomLen]byte)(random[:randomLen]), &sum)
	return hmac.Equal(sum[:], got[:macLen])
}

func (c *Codec) sign(msg *[randomLen]byte, out *[macLen]byte) {
	s := c.macs.Get().(*signer)
	s.msg = *msg
	s.mac.Reset()
	s.mac.Write(s.msg[:])
	s.mac.Sum(s.sum[:0])
	copy(out[:], s.sum[:])
	c.macs.Put(s)
}
