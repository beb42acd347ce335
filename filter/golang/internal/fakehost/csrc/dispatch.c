// The worker's dispatcher: work posted by the Go side (Continue, local
// replies, header writes and route cache clears from goroutines) runs here,
// on the stream's worker thread, in posting order, and is dropped once the
// stream is destroyed (Envoy's posted lambdas check hasDestroyed()).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"

// continue_status: Filter::continueStatusInternal.
static void continue_status(pstate* p, int status) {
  stream* st = p->st;
  pthread_mutex_lock(&st->mu);
  int saved = p->ps.state;
  st->resumed = 1;
  pthread_mutex_unlock(&st->mu);
  if (handle(p, status)) {
    if (saved == ST_PROCESSING_HEADER) {
      // Only when Go saw the end, or more of the stream is to come:
      // otherwise the data phase continues it.
      if (p->do_end_stream || !(p->end_stream || p->trailers != NULL)) {
        continue_processing(p);
      }
    } else if (saved == ST_PROCESSING_DATA) {
      continue_do_data(p);
    } else if (saved == ST_PROCESSING_TRAILER) {
      continue_do_data(p);
      continue_processing(p);
    }
  }
  if (atomic_load(&st->destroyed)) {
    return;
  }
  pthread_mutex_lock(&st->mu);
  int cur = p->ps.state;
  int more = (cur == ST_WAITING_DATA && (p->data_buffer.n > 0 || p->end_stream)) ||
             (cur == ST_WAITING_ALL_DATA && (p->end_stream || p->trailers != NULL));
  bytes buffered = p->data_buffer;
  if (more) {
    memset(&p->data_buffer, 0, sizeof(bytes));
  }
  pthread_mutex_unlock(&st->mu);
  int done = 0;
  if (more) {
    do_data_go(p, buffered, p->end_stream, &done);
    if (!done) {
      return; // no trailers while the data is not finished
    }
    continue_do_data(p);
  }
  if (p->ps.state == ST_WAITING_TRAILER && p->trailers != NULL) {
    do_trailer_go(p, &done);
    if (done) {
      continue_processing(p);
    }
  }
}

// send_local_reply: Filter::sendLocalReplyInternal. From the decoder, Envoy
// sends the reply through the encoder filters, this one included; from the
// encoder (response headers not yet sent) it replaces the response.
static void send_local_reply(pstate* p, reply* r) {
  stream* st = p->st;
  pthread_mutex_lock(&st->mu);
  st->resumed = 1;
  for (size_t i = 0; i < p->ndolist; i++) {
    b_free(p->dolist[i]);
    free(p->dolist[i]);
  }
  p->ndolist = 0;
  b_free(&p->data_buffer);
  if (!p->ps.is_encoding) {
    p->ps.state = ST_WAITING_HEADER;
  }
  if (st->nreplies < 4) {
    st->replies[st->nreplies++] = *r;
  }
  pthread_mutex_unlock(&st->mu);
  if (p->ps.is_encoding) {
    return;
  }
  char code[8];
  snprintf(code, sizeof(code), "%d", r->status);
  pthread_mutex_lock(&st->mu);
  h_clear(&st->response);
  h_add(&st->response, ":status", 7, code, strlen(code));
  if (r->ctype.n > 0) {
    h_add(&st->response, "content-type", 12, r->ctype.p, r->ctype.n);
  }
  b_set(&st->details, r->details.p, r->details.n);
  pthread_mutex_unlock(&st->mu);
  do_headers(&st->enc, &st->response, r->body.n == 0);
}

static void run_one(stream* st, post* w) {
  switch (w->kind) {
  case P_SET:
  case P_ADD:
  case P_REMOVE:
    pthread_mutex_lock(&st->mu);
    if (w->kind == P_REMOVE) {
      h_remove(w->m, w->k.p, w->k.n);
    } else if (w->kind == P_ADD) {
      h_add(w->m, w->k.p, w->k.n, w->v.p, w->v.n);
    } else {
      h_set(w->m, w->k.p, w->k.n, w->v.p, w->v.n);
    }
    pthread_mutex_unlock(&st->mu);
    break;
  case P_CLEAR_ROUTE:
    pthread_mutex_lock(&st->mu);
    st->route_clears++;
    pthread_mutex_unlock(&st->mu);
    break;
  case P_CONTINUE:
    continue_status(w->p, w->status);
    break;
  case P_REPLY:
    send_local_reply(w->p, &w->r);
    memset(&w->r, 0, sizeof(reply)); // owned by the stream now
    break;
  }
}

void run_posted(stream* st) {
  for (;;) {
    pthread_mutex_lock(&st->mu);
    post* w = st->head;
    if (w != NULL) {
      st->head = w->next;
      if (st->head == NULL) {
        st->tail = NULL;
      }
    }
    pthread_mutex_unlock(&st->mu);
    if (w == NULL) {
      return;
    }
    if (!atomic_load(&st->destroyed)) {
      run_one(st, w);
    }
    b_free(&w->k);
    b_free(&w->v);
    b_free(&w->r.body);
    b_free(&w->r.details);
    b_free(&w->r.ctype);
    b_free(&w->r.sid);
    free(w);
  }
}

// await_resumed runs posted work as it arrives until a posted Continue or
// local reply ran, or ms pass. It returns whether the stream resumed.
int await_resumed(stream* st, int ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += ms / 1000;
  deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  for (;;) {
    run_posted(st);
    pthread_mutex_lock(&st->mu);
    if (st->resumed) {
      pthread_mutex_unlock(&st->mu);
      return 1;
    }
    int rc = 0;
    while (st->head == NULL && rc != ETIMEDOUT) {
      rc = pthread_cond_timedwait(&st->cond, &st->mu, &deadline);
    }
    int timed_out = st->head == NULL;
    pthread_mutex_unlock(&st->mu);
    if (timed_out) {
      return 0;
    }
  }
}

// stream_destroy: Filter::onStreamComplete then onDestroy. The stream is
// marked destroyed first: from then on the API refuses every stream call.
void stream_destroy(stream* st) {
  if (atomic_load(&st->destroyed)) {
    return;
  }
  atomic_store(&st->req.is_golang_processing_log, 1);
  lib.on_stream_complete(&st->req);
  atomic_store(&st->req.is_golang_processing_log, 0);
  pthread_mutex_lock(&st->mu);
  int terminate = in_go(&st->dec) || in_go(&st->enc);
  atomic_store(&st->destroyed, 1);
  pthread_mutex_unlock(&st->mu);
  lib.on_destroy(&st->req, (GoUint64)terminate); // DestroyReason: Normal 0, Terminate 1
}
