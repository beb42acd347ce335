// The golang filter's state machine (golang_filter.cc, processor_state.cc,
// Envoy 1.39.1) around the .so's entry points: what Envoy does with each
// status Go returns, its buffering while Go waits for the whole body, and the
// dispatcher that runs posted work on the stream's worker thread.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"

golib lib;

int on_worker(stream* st) { return pthread_equal(pthread_self(), st->worker); }

// capi_error records a refused call; the caller holds st->mu.
void capi_error(stream* st, const char* call, const char* why) {
  b_append(&st->capi_errors, call, strlen(call));
  b_append(&st->capi_errors, ": ", 2);
  b_append(&st->capi_errors, why, strlen(why));
  b_append(&st->capi_errors, "\n", 1);
}

stream* stream_new(int index, GoUint64 config_id, int worker_id, const char* plugin, size_t plen) {
  stream* st = calloc(1, sizeof(stream));
  st->req.plugin_name.data = plugin;
  st->req.plugin_name.len = plen;
  st->req.configId = config_id;
  st->req.worker_id = (uint32_t)worker_id; // the shim keeps one request map per worker
  st->index = index;
  st->worker = pthread_self();
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->cond, NULL);
  st->dec.ps.req = &st->req;
  st->dec.ps.is_encoding = 0;
  st->dec.st = st;
  st->enc.ps.req = &st->req;
  st->enc.ps.is_encoding = 1;
  st->enc.st = st;
  return st;
}

void enqueue(stream* st, post* w) {
  pthread_mutex_lock(&st->mu);
  if (st->tail) {
    st->tail->next = w;
  } else {
    st->head = w;
  }
  st->tail = w;
  pthread_cond_broadcast(&st->cond);
  pthread_mutex_unlock(&st->mu);
}

// handle_status: ProcessorState::handle{Header,Data,Trailer}GolangStatus.
// Returns whether the phase is done. The caller holds st->mu.
static int handle_status(pstate* p, int s) {
  int* state = &p->ps.state;
  switch (*state) {
  case ST_PROCESSING_HEADER:
    if (s == GS_CONTINUE) {
      *state = p->do_end_stream ? ST_DONE : ST_WAITING_DATA;
      return 1;
    }
    if (s == GS_STOP_AND_BUFFER) {
      *state = ST_WAITING_ALL_DATA;
    } else if (s == GS_STOP_AND_BUFFER_WATERMARK) {
      *state = ST_WAITING_DATA;
    } else if (s != GS_LOCAL_REPLY && s != GS_RUNNING) {
      capi_error(p->st, "header status", "unexpected");
    }
    return 0;
  case ST_PROCESSING_DATA: {
    int done = 0;
    if (s == GS_LOCAL_REPLY || s == GS_RUNNING) {
      return 0; // and no trailers check, as in Envoy
    }
    if (s == GS_CONTINUE) {
      *state = p->do_end_stream ? ST_DONE : ST_WAITING_DATA;
      done = 1;
    } else if (s == GS_STOP_AND_BUFFER || s == GS_STOP_AND_BUFFER_WATERMARK || s == GS_STOP_NO_BUFFER) {
      if (p->do_end_stream) {
        capi_error(p->st, "data status", "want more data while stream is end");
      }
      *state = s == GS_STOP_AND_BUFFER ? ST_WAITING_ALL_DATA : ST_WAITING_DATA;
      if (s == GS_STOP_NO_BUFFER && p->ndolist > 0) {
        b_free(p->dolist[--p->ndolist]);
      }
    } else {
      capi_error(p->st, "data status", "unexpected");
    }
    if (p->trailers != NULL && p->data_buffer.n == 0) {
      *state = ST_WAITING_TRAILER;
    }
    return done;
  }
  case ST_PROCESSING_TRAILER:
    if (s == GS_CONTINUE) {
      *state = ST_DONE;
      return 1;
    }
    if (s != GS_LOCAL_REPLY && s != GS_RUNNING) {
      capi_error(p->st, "trailer status", "unexpected");
    }
    return 0;
  }
  capi_error(p->st, "status", "not processing Go");
  return 0;
}

int handle(pstate* p, int s) {
  pthread_mutex_lock(&p->st->mu);
  int done = handle_status(p, s);
  pthread_mutex_unlock(&p->st->mu);
  return done;
}

// pass_headers: the header phase continued towards the next filter.
static void pass_headers(pstate* p) {
  stream* st = p->st;
  pthread_mutex_lock(&st->mu);
  p->headers = NULL;
  if (p->ps.is_encoding) {
    st->down_headers = 1;
  } else {
    st->up_headers = 1;
    if (p->do_end_stream && p->trailers == NULL) {
      st->up_end = 1;
    }
  }
  pthread_mutex_unlock(&st->mu);
}

// do_headers: Filter::doHeaders / doHeadersGo.
int do_headers(pstate* p, hmap* m, int end) {
  stream* st = p->st;
  pthread_mutex_lock(&st->mu);
  p->end_stream = end;
  p->headers = m;
  p->ps.state = ST_PROCESSING_HEADER;
  p->do_end_stream = end;
  GoUint64 n = m->n, size = h_bytes(m);
  pthread_mutex_unlock(&st->mu);
  int s = (int)lib.on_header(&p->ps, (GoUint64)end, n, size);
  if (handle(p, s)) {
    pass_headers(p);
  }
  return s;
}

// continue_do_data: ProcessorState::continueDoData. Data that moves on also
// releases headers the filter had stopped (the filter manager sends them
// first when iteration resumes).
void continue_do_data(pstate* p) {
  stream* st = p->st;
  pthread_mutex_lock(&st->mu);
  if (p->end_stream || p->ndolist > 0) {
    for (size_t i = 0; i < p->ndolist; i++) {
      if (!p->ps.is_encoding) {
        b_append(&st->up_body, p->dolist[i]->p, p->dolist[i]->n);
      }
      b_free(p->dolist[i]);
      free(p->dolist[i]);
    }
    p->ndolist = 0;
    if (p->ps.is_encoding) {
      st->down_headers = 1;
    } else {
      st->up_headers = 1;
      st->up_end |= p->do_end_stream;
    }
  }
  pthread_mutex_unlock(&st->mu);
}

void continue_processing(pstate* p) {
  pthread_mutex_lock(&p->st->mu);
  p->st->continues++;
  pthread_mutex_unlock(&p->st->mu);
  pass_headers(p);
}

// do_data_go: Filter::doDataGo; data (owned) becomes a doDataList entry.
int do_data_go(pstate* p, bytes data, int end, int* done) {
  stream* st = p->st;
  bytes* b = malloc(sizeof(bytes));
  *b = data;
  pthread_mutex_lock(&st->mu);
  p->ps.state = ST_PROCESSING_DATA;
  p->do_end_stream = end;
  if (p->ndolist == p->capdolist) {
    p->capdolist = p->capdolist ? p->capdolist * 2 : 4;
    p->dolist = realloc(p->dolist, p->capdolist * sizeof(bytes*));
  }
  p->dolist[p->ndolist++] = b;
  GoUint64 len = b->n;
  pthread_mutex_unlock(&st->mu);
  int s = (int)lib.on_data(&p->ps, (GoUint64)end, (GoUint64)(uintptr_t)b, len);
  *done = handle(p, s);
  return s;
}

static void hook_done(stream* st) {
  pthread_mutex_lock(&st->mu);
  st->resumed = 0;
  pthread_mutex_unlock(&st->mu);
  run_posted(st);
}

int decode_headers(stream* st, int end) {
  int s = do_headers(&st->dec, &st->request, end);
  hook_done(st);
  return s;
}

int encode_headers(stream* st, int end) {
  int s = do_headers(&st->enc, &st->response, end);
  hook_done(st);
  return s;
}

// decode_data: Filter::decodeData / doData. While Go waits for the whole
// body, Envoy buffers chunks without calling Go.
int decode_data(stream* st, const char* data, size_t n, int end) {
  pstate* p = &st->dec;
  bytes chunk = {0};
  b_set(&chunk, data, n);
  int s = NOT_CALLED, done = 0;
  pthread_mutex_lock(&st->mu);
  p->end_stream = end;
  int state = p->ps.state;
  if (state == ST_WAITING_ALL_DATA && end) {
    b_append(&p->data_buffer, chunk.p, chunk.n); // new data = data_buffer_ + data
    b_free(&chunk);
    chunk = p->data_buffer;
    memset(&p->data_buffer, 0, sizeof(bytes));
  } else if (state == ST_WAITING_ALL_DATA || state == ST_PROCESSING_HEADER ||
             state == ST_PROCESSING_DATA) {
    b_append(&p->data_buffer, chunk.p, chunk.n);
    b_free(&chunk);
    state = -1;
  } else if (state == ST_DONE) {
    b_append(&st->up_body, chunk.p, chunk.n);
    st->up_end |= end;
    b_free(&chunk);
    state = -1;
  } else if (state != ST_WAITING_DATA) {
    b_free(&chunk); // after a local reply: dropped
    state = -1;
  }
  pthread_mutex_unlock(&st->mu);
  if (state != -1) {
    s = do_data_go(p, chunk, end, &done);
    if (done) {
      continue_do_data(p);
    }
  }
  hook_done(st);
  return s;
}

int do_trailer_go(pstate* p, int* done) {
  stream* st = p->st;
  pthread_mutex_lock(&st->mu);
  p->ps.state = ST_PROCESSING_TRAILER;
  p->do_end_stream = 1;
  GoUint64 n = p->trailers->n, size = h_bytes(p->trailers);
  pthread_mutex_unlock(&st->mu);
  int s = (int)lib.on_header(&p->ps, 1, n, size);
  *done = handle(p, s);
  if (*done) {
    pthread_mutex_lock(&st->mu);
    st->up_end = 1;
    pthread_mutex_unlock(&st->mu);
  }
  return s;
}

// decode_trailers: Filter::doTrailer.
int decode_trailers(stream* st) {
  pstate* p = &st->dec;
  int s = NOT_CALLED, done = 0;
  pthread_mutex_lock(&st->mu);
  p->trailers = &st->trailers;
  int state = p->ps.state;
  bytes buffered = p->data_buffer;
  if (state == ST_WAITING_ALL_DATA) {
    memset(&p->data_buffer, 0, sizeof(bytes));
  }
  pthread_mutex_unlock(&st->mu);
  if (state == ST_WAITING_TRAILER || state == ST_WAITING_DATA) {
    s = do_trailer_go(p, &done);
  } else if (state == ST_WAITING_ALL_DATA) {
    if (buffered.n > 0) {
      s = do_data_go(p, buffered, 0, &done);
    }
    if (buffered.n == 0 || p->ps.state == ST_WAITING_TRAILER) {
      continue_do_data(p);
      s = do_trailer_go(p, &done);
    }
  }
  hook_done(st);
  return s;
}

