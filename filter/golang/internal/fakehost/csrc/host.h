// A fake Envoy for the golang filter's shared object, for tests only.
//
// It implements the C callbacks the golang filter shim calls (api.h, whose
// Envoy 1.39.1 copy this is compiled against, so a signature drift breaks
// the build), loads the real .so with dlopen, and drives its exported entry
// points (envoyGoFilterOnHttpHeader, ...) the way golang_filter.cc does.
// main.c reads commands on stdin; see filter/golang/internal/fakehost.
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"

typedef unsigned long long GoUint64;
typedef long long GoInt64;

// cgo's _GoString_: the layout copyHeaderMapToGo fills and
// stringsFromGoSlice reads (the shim passes Go strings).
typedef struct {
  const char* p;
  ptrdiff_t n;
} gostr;

// processor_state.h FilterState. The shim reads processState.state to tell
// the phase (ProcessingHeader=1, ProcessingData=4, ProcessingTrailer=6).
enum {
  ST_WAITING_HEADER,
  ST_PROCESSING_HEADER,
  ST_WAITING_DATA,
  ST_WAITING_ALL_DATA,
  ST_PROCESSING_DATA,
  ST_WAITING_TRAILER,
  ST_PROCESSING_TRAILER,
  ST_DONE,
};

// GolangStatus, i.e. api.StatusType.
enum { GS_RUNNING, GS_LOCAL_REPLY, GS_CONTINUE, GS_STOP_AND_BUFFER, GS_STOP_AND_BUFFER_WATERMARK,
       GS_STOP_NO_BUFFER };

#define NOT_CALLED (-1) // status reported when Envoy does not call into Go

typedef struct {
  char* p;
  size_t n, cap;
} bytes;

typedef struct {
  bytes k, v;
} header;

typedef struct {
  header* h;
  size_t n, cap;
} hmap;

typedef struct stream stream;

// ProcessorState: one for decoding, one for encoding.
typedef struct pstate {
  processState ps; // first: the shim hands back &ps as its processState
  stream* st;
  int end_stream;    // end_stream_: the stream's end was seen
  int do_end_stream; // do_end_stream_: Go is processing the end
  hmap* headers;     // state.headers: NULL once the header phase continued
  hmap* trailers;    // state.trailers: set once trailers were seen
  bytes data_buffer; // data_buffer_
  bytes** dolist;    // doDataList: the chunks handed to Go
  size_t ndolist, capdolist;
} pstate;

typedef struct {
  int status;
  bytes body, details, ctype, sid; // sid: the mcp-session-id header
  int from_encoder, panic;
} reply;

typedef enum { P_SET, P_ADD, P_REMOVE, P_CLEAR_ROUTE, P_CONTINUE, P_REPLY } post_kind;

// Work a non-worker thread posts to the stream's dispatcher.
typedef struct post {
  post_kind kind;
  pstate* p;
  hmap* m;
  bytes k, v;
  int status;
  reply r;
  struct post* next;
} post;

// A filter config: httpConfig first, the shim hands it back for metrics.
typedef struct {
  httpConfig hc;
  GoUint64 go_id;
  atomic_int gone; // Envoy freed it: metric calls fail (FilterIsGone)
  pthread_mutex_t mu;
  char* names[64];
  uint64_t values[64];
  int n;
} fconfig;

struct stream {
  httpRequest req; // first: the shim hands back the httpRequest pointer
  int index;
  pthread_t worker;
  pthread_mutex_t mu; // guards everything below that goroutines reach
  pthread_cond_t cond;
  post *head, *tail;
  pstate dec, enc;
  hmap request, response, trailers;
  bytes details;
  atomic_int destroyed;
  int resumed; // a posted Continue or reply ran
  // What reached the upstream side and the client.
  int up_headers, up_end, down_headers;
  bytes up_body;
  reply replies[4];
  int nreplies;
  int route_clears, continues;
  bytes capi_errors; // one line each
  atomic_int finalized;
};

// Entry points of the .so (contrib/golang/common/dso/libgolang.h).
typedef struct {
  GoUint64 (*new_config)(httpConfig*);
  GoUint64 (*merge_config)(GoUint64, GoUint64, GoUint64, GoUint64);
  void (*destroy_config)(GoUint64, GoInt64);
  GoUint64 (*on_header)(processState*, GoUint64, GoUint64, GoUint64);
  GoUint64 (*on_data)(processState*, GoUint64, GoUint64, GoUint64);
  void (*on_log)(httpRequest*, GoUint64, processState*, processState*, GoUint64, GoUint64, GoUint64,
                 GoUint64, GoUint64, GoUint64, GoUint64, GoUint64);
  void (*on_stream_complete)(httpRequest*);
  void (*on_destroy)(httpRequest*, GoUint64);
  void (*sema_dec)(httpRequest*);
  void (*cleanup)(void);
} golib;

extern golib lib;

// bytes and header maps (util.c)
void b_set(bytes* b, const char* p, size_t n);
void b_append(bytes* b, const char* p, size_t n);
void b_free(bytes* b);
void h_add(hmap* m, const char* k, size_t kn, const char* v, size_t vn);
void h_remove(hmap* m, const char* k, size_t kn);
void h_set(hmap* m, const char* k, size_t kn, const char* v, size_t vn);
const header* h_get(const hmap* m, const char* k, size_t kn);
uint64_t h_bytes(const hmap* m);
void h_clear(hmap* m);

// the golang filter's state machine (filter.c)
stream* stream_new(int index, GoUint64 config_id, int worker_id, const char* plugin, size_t plen);
int decode_headers(stream* st, int end);
int decode_data(stream* st, const char* p, size_t n, int end);
int decode_trailers(stream* st);
int encode_headers(stream* st, int end);
void stream_destroy(stream* st);
void run_posted(stream* st);
int await_resumed(stream* st, int ms);
void enqueue(stream* st, post* w);

// filter.c's state machine steps, shared with dispatch.c
int handle(pstate* p, int s);
int do_headers(pstate* p, hmap* m, int end);
int do_data_go(pstate* p, bytes data, int end, int* done);
int do_trailer_go(pstate* p, int* done);
void continue_do_data(pstate* p);
void continue_processing(pstate* p);

// callbacks.c's checks, shared with request.c
int in_go(pstate* p);
CAPIStatus check_filter(stream* st, const char* call);
CAPIStatus unexpected(stream* st, const char* call);
int on_worker(stream* st);
void capi_error(stream* st, const char* call, const char* why);
