// The 34 C callbacks the golang filter shim imports (api.h), with the checks
// and threading rules of Envoy 1.39.1's cgo.cc and golang_filter.cc:
//  - calls on a processState fail with CAPINotInGo unless Go is processing
//    that direction, then with CAPIFilterIsDestroy once the stream is gone;
//  - calls on the request (route cache, stream info) need Go processing in
//    either direction;
//  - Continue and SendLocalReply are always posted to the worker; header
//    writes and route cache clears are posted when made from another thread,
//    applied inline on the worker; buffer writes are always inline.
// The shim turns a non-OK status into a panic (handleCApiStatus), which the
// plugin must survive. Every refusal is recorded for the test to see.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

int in_go(pstate* p) {
  int s = p->ps.state;
  return s == ST_PROCESSING_HEADER || s == ST_PROCESSING_DATA || s == ST_PROCESSING_TRAILER ||
         atomic_load(&p->st->req.is_golang_processing_log);
}

static const char* status_name(CAPIStatus r) {
  switch (r) {
  case CAPINotInGo:
    return "not processing Go";
  case CAPIFilterIsDestroy:
    return "filter destroyed";
  case CAPIInvalidPhase:
    return "invalid phase";
  default:
    return "refused";
  }
}

// check_state: envoyGoFilterProcessStateHandlerWrapper, then the Filter's
// destroy check, then (headers) whether the map is still the filter's.
static CAPIStatus check_state(pstate* p, const char* call, int need_headers) {
  stream* st = p->st;
  CAPIStatus r = CAPIOK;
  pthread_mutex_lock(&st->mu);
  if (!in_go(p)) {
    r = CAPINotInGo;
  } else if (atomic_load(&st->destroyed)) {
    r = CAPIFilterIsDestroy;
  } else if (need_headers == 1 && p->headers == NULL) {
    r = CAPIInvalidPhase;
  } else if (need_headers == 2 && p->trailers == NULL) {
    r = CAPIInvalidPhase;
  }
  if (r != CAPIOK) {
    capi_error(st, call, status_name(r));
  }
  pthread_mutex_unlock(&st->mu);
  return r;
}

// check_filter: envoyGoFilterHandlerWrapper (Go processing either way).
CAPIStatus check_filter(stream* st, const char* call) {
  CAPIStatus r = CAPIOK;
  pthread_mutex_lock(&st->mu);
  if (!in_go(&st->dec) && !in_go(&st->enc)) {
    r = CAPINotInGo;
  } else if (atomic_load(&st->destroyed)) {
    r = CAPIFilterIsDestroy;
  }
  if (r != CAPIOK) {
    capi_error(st, call, status_name(r));
  }
  pthread_mutex_unlock(&st->mu);
  return r;
}

static post* new_post(post_kind kind, pstate* p) {
  post* w = calloc(1, sizeof(post));
  w->kind = kind;
  w->p = p;
  return w;
}

CAPIStatus envoyGoFilterHttpContinue(void* s, int status) {
  pstate* p = s;
  CAPIStatus r = check_state(p, "Continue", 0);
  if (r == CAPIOK) {
    // Always posted (Filter::continueStatus): inline it would re-enter the
    // state machine before it consumed the status Go returned.
    post* w = new_post(P_CONTINUE, p);
    w->status = status;
    enqueue(p->st, w);
  }
  return r;
}

static CAPIStatus local_reply(pstate* p, int code, const char* body, size_t blen, const gostr* hs,
                              int hn, const char* details, size_t dlen, int panic) {
  CAPIStatus r = check_state(p, panic ? "SendPanicReply" : "SendLocalReply", 0);
  if (r != CAPIOK) {
    return r;
  }
  // Deep copies: Go memory is only valid during this call.
  post* w = new_post(P_REPLY, p);
  w->r.status = code;
  w->r.from_encoder = p->ps.is_encoding;
  w->r.panic = panic;
  b_set(&w->r.body, body, blen);
  b_set(&w->r.details, details, dlen);
  for (int i = 0; i + 1 < hn; i += 2) {
    if (hs[i].n == 12 && memcmp(hs[i].p, "content-type", 12) == 0 && hs[i + 1].n > 0) {
      b_set(&w->r.ctype, hs[i + 1].p, (size_t)hs[i + 1].n);
    }
    if (hs[i].n == 14 && memcmp(hs[i].p, "mcp-session-id", 14) == 0 && hs[i + 1].n > 0) {
      b_set(&w->r.sid, hs[i + 1].p, (size_t)hs[i + 1].n);
    }
  }
  enqueue(p->st, w);
  return CAPIOK;
}

// headers is a []string of key, value pairs (stringsFromGoSlice).
CAPIStatus envoyGoFilterHttpSendLocalReply(void* s, int response_code, void* body_text_data,
                                           int body_text_len, void* headers, int headers_num,
                                           long long int grpc_status, void* details_data,
                                           int details_len) {
  (void)grpc_status;
  return local_reply(s, response_code, body_text_data, (size_t)body_text_len, headers, headers_num,
                     details_data, (size_t)details_len, 0);
}

// Filter::sendPanicReply: a 500 with a fixed body and no details.
CAPIStatus envoyGoFilterHttpSendPanicReply(void* s, void* details_data, int details_len) {
  (void)details_data;
  (void)details_len;
  static const char body[] = "error happened in filter\r\n";
  return local_reply(s, 500, body, sizeof(body) - 1, NULL, 0, "", 0, 1);
}

// Not used by mcpgw: recorded, refused.
CAPIStatus unexpected(stream* st, const char* call) {
  pthread_mutex_lock(&st->mu);
  capi_error(st, call, "unexpected call");
  pthread_mutex_unlock(&st->mu);
  return CAPIInvalidScene;
}

CAPIStatus envoyGoFilterHttpAddData(void* s, void* data, int data_len, bool is_streaming) {
  (void)data, (void)data_len, (void)is_streaming;
  return unexpected(((pstate*)s)->st, "AddData");
}

CAPIStatus envoyGoFilterHttpInjectData(void* s, void* data, int data_len) {
  (void)data, (void)data_len;
  return unexpected(((pstate*)s)->st, "InjectData");
}

CAPIStatus envoyGoFilterHttpGetHeader(void* s, void* key_data, int key_len, uint64_t* value_data,
                                      int* value_len) {
  pstate* p = s;
  CAPIStatus r = check_state(p, "GetHeader", 1);
  if (r == CAPIOK) {
    pthread_mutex_lock(&p->st->mu);
    const header* h = h_get(p->headers, key_data, (size_t)key_len);
    if (h != NULL) {
      *value_data = (uint64_t)(uintptr_t)h->v.p; // valid until the map changes
      *value_len = (int)h->v.n;
    }
    pthread_mutex_unlock(&p->st->mu);
  }
  return r;
}

// copyHeaderMapToGo: strs has room for 2*size() Go strings, buf for
// byteSize() bytes, as the shim sized them from the header phase's counts.
static void copy_map(const hmap* m, gostr* strs, char* buf) {
  for (size_t i = 0; i < m->n; i++) {
    const header* h = &m->h[i];
    strs[2 * i].p = buf;
    strs[2 * i].n = (ptrdiff_t)h->k.n;
    memcpy(buf, h->k.p, h->k.n);
    buf += h->k.n;
    strs[2 * i + 1].n = (ptrdiff_t)h->v.n;
    if (h->v.n > 0) { // Go may read p as invalid when n is 0
      strs[2 * i + 1].p = buf;
      memcpy(buf, h->v.p, h->v.n);
      buf += h->v.n;
    }
  }
}

CAPIStatus envoyGoFilterHttpCopyHeaders(void* s, void* strs, void* buf) {
  pstate* p = s;
  CAPIStatus r = check_state(p, "CopyHeaders", 1);
  if (r == CAPIOK) {
    pthread_mutex_lock(&p->st->mu);
    copy_map(p->headers, strs, buf);
    pthread_mutex_unlock(&p->st->mu);
  }
  return r;
}

// write_map applies or posts a header write (Filter::setHeader/removeHeader).
static CAPIStatus write_map(pstate* p, const char* call, int which, post_kind kind, const char* k,
                            int kn, const char* v, int vn) {
  CAPIStatus r = check_state(p, call, which);
  if (r != CAPIOK) {
    return r;
  }
  stream* st = p->st;
  hmap* m = which == 2 ? p->trailers : p->headers;
  if (on_worker(st)) {
    pthread_mutex_lock(&st->mu);
    if (kind == P_REMOVE) {
      h_remove(m, k, (size_t)kn);
    } else if (kind == P_ADD) {
      h_add(m, k, (size_t)kn, v, (size_t)vn);
    } else {
      h_set(m, k, (size_t)kn, v, (size_t)vn);
    }
    pthread_mutex_unlock(&st->mu);
    return CAPIOK;
  }
  // From a goroutine: copy, post; the worker applies it in order.
  post* w = new_post(kind, p);
  w->m = m;
  b_set(&w->k, k, (size_t)kn);
  b_set(&w->v, v, (size_t)(vn > 0 ? vn : 0));
  enqueue(st, w);
  return CAPIOK;
}

CAPIStatus envoyGoFilterHttpSetHeaderHelper(void* s, void* key_data, int key_len, void* value_data,
                                            int value_len, headerAction action) {
  return write_map(s, "SetHeader", 1, action == HeaderAdd ? P_ADD : P_SET, key_data, key_len,
                   value_data, value_len);
}

CAPIStatus envoyGoFilterHttpRemoveHeader(void* s, void* key_data, int key_len) {
  return write_map(s, "RemoveHeader", 1, P_REMOVE, key_data, key_len, NULL, 0);
}

// check_buffer: the buffer must be one of the state's doDataList entries.
static CAPIStatus check_buffer(pstate* p, const char* call, uint64_t buffer) {
  CAPIStatus r = check_state(p, call, 0);
  if (r != CAPIOK) {
    return r;
  }
  pthread_mutex_lock(&p->st->mu);
  r = CAPIInvalidPhase;
  for (size_t i = 0; i < p->ndolist; i++) {
    if ((uint64_t)(uintptr_t)p->dolist[i] == buffer) {
      r = CAPIOK;
    }
  }
  if (r != CAPIOK) {
    capi_error(p->st, call, "unknown buffer");
  }
  pthread_mutex_unlock(&p->st->mu);
  return r;
}

CAPIStatus envoyGoFilterHttpGetBuffer(void* s, uint64_t buffer, void* value) {
  pstate* p = s;
  CAPIStatus r = check_buffer(p, "GetBuffer", buffer);
  if (r == CAPIOK) {
    bytes* b = (bytes*)(uintptr_t)buffer;
    pthread_mutex_lock(&p->st->mu);
    memcpy(value, b->p, b->n); // value has the length Go was told
    pthread_mutex_unlock(&p->st->mu);
  }
  return r;
}

CAPIStatus envoyGoFilterHttpDrainBuffer(void* s, uint64_t buffer, uint64_t length) {
  pstate* p = s;
  CAPIStatus r = check_buffer(p, "DrainBuffer", buffer);
  if (r == CAPIOK) {
    bytes* b = (bytes*)(uintptr_t)buffer;
    pthread_mutex_lock(&p->st->mu);
    size_t n = length < b->n ? length : b->n;
    memmove(b->p, b->p + n, b->n - n);
    b->n -= n;
    pthread_mutex_unlock(&p->st->mu);
  }
  return r;
}

CAPIStatus envoyGoFilterHttpSetBufferHelper(void* s, uint64_t buffer, void* data, int length,
                                            bufferAction action) {
  pstate* p = s;
  CAPIStatus r = check_buffer(p, "SetBuffer", buffer);
  if (r != CAPIOK) {
    return r;
  }
  bytes* b = (bytes*)(uintptr_t)buffer;
  pthread_mutex_lock(&p->st->mu);
  if (action == Set) {
    b_set(b, data, (size_t)length);
  } else if (action == Prepend) {
    bytes t = {0};
    b_set(&t, data, (size_t)length);
    b_append(&t, b->p, b->n);
    b_free(b);
    *b = t;
  } else {
    b_append(b, data, (size_t)length);
  }
  pthread_mutex_unlock(&p->st->mu);
  return CAPIOK;
}

CAPIStatus envoyGoFilterHttpCopyTrailers(void* s, void* strs, void* buf) {
  pstate* p = s;
  CAPIStatus r = check_state(p, "CopyTrailers", 2);
  if (r == CAPIOK) {
    pthread_mutex_lock(&p->st->mu);
    copy_map(p->trailers, strs, buf);
    pthread_mutex_unlock(&p->st->mu);
  }
  return r;
}

CAPIStatus envoyGoFilterHttpSetTrailer(void* s, void* key_data, int key_len, void* value,
                                       int value_len, headerAction action) {
  return write_map(s, "SetTrailer", 2, action == HeaderAdd ? P_ADD : P_SET, key_data, key_len,
                   value, value_len);
}

CAPIStatus envoyGoFilterHttpRemoveTrailer(void* s, void* key_data, int key_len) {
  return write_map(s, "RemoveTrailer", 2, P_REMOVE, key_data, key_len, NULL, 0);
}

CAPIStatus envoyGoFilterHttpSetUpstreamOverrideHost(void* s, void* host_data, int host_len,
                                                    bool strict) {
  (void)host_data, (void)host_len, (void)strict;
  return unexpected(((pstate*)s)->st, "SetUpstreamOverrideHost");
}
