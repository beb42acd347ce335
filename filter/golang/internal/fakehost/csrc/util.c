// Byte strings and header maps (Envoy's HeaderMap: ordered, lower-case keys).
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

static void grow(bytes* b, size_t need) {
  if (need <= b->cap) {
    return;
  }
  size_t cap = b->cap ? b->cap * 2 : 64;
  while (cap < need) {
    cap *= 2;
  }
  b->p = realloc(b->p, cap);
  b->cap = cap;
}

void b_set(bytes* b, const char* p, size_t n) {
  b->n = 0;
  b_append(b, p, n);
}

void b_append(bytes* b, const char* p, size_t n) {
  grow(b, b->n + n + 1);
  if (n > 0) {
    memcpy(b->p + b->n, p, n);
  }
  b->n += n;
  b->p[b->n] = 0;
}

void b_free(bytes* b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

static int key_eq(const bytes* k, const char* p, size_t n) {
  if (k->n != n) {
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (k->p[i] != (char)tolower((unsigned char)p[i])) {
      return 0;
    }
  }
  return 1;
}

void h_add(hmap* m, const char* k, size_t kn, const char* v, size_t vn) {
  if (m->n == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 16;
    m->h = realloc(m->h, m->cap * sizeof(header));
  }
  header* h = &m->h[m->n++];
  memset(h, 0, sizeof(*h));
  b_set(&h->k, k, kn);
  for (size_t i = 0; i < kn; i++) {
    h->k.p[i] = (char)tolower((unsigned char)h->k.p[i]); // LowerCaseString
  }
  b_set(&h->v, v, vn);
}

void h_remove(hmap* m, const char* k, size_t kn) {
  size_t j = 0;
  for (size_t i = 0; i < m->n; i++) {
    if (key_eq(&m->h[i].k, k, kn)) {
      b_free(&m->h[i].k);
      b_free(&m->h[i].v);
      continue;
    }
    m->h[j++] = m->h[i];
  }
  m->n = j;
}

// setCopy: replace every value of k with one.
void h_set(hmap* m, const char* k, size_t kn, const char* v, size_t vn) {
  h_remove(m, k, kn);
  h_add(m, k, kn, v, vn);
}

const header* h_get(const hmap* m, const char* k, size_t kn) {
  for (size_t i = 0; i < m->n; i++) {
    if (key_eq(&m->h[i].k, k, kn)) {
      return &m->h[i];
    }
  }
  return NULL;
}

// HeaderMap::byteSize(): the sum of key and value sizes.
uint64_t h_bytes(const hmap* m) {
  uint64_t n = 0;
  for (size_t i = 0; i < m->n; i++) {
    n += m->h[i].k.n + m->h[i].v.n;
  }
  return n;
}

void h_clear(hmap* m) {
  for (size_t i = 0; i < m->n; i++) {
    b_free(&m->h[i].k);
    b_free(&m->h[i].v);
  }
  m->n = 0;
}
