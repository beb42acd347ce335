// burst: whole requests on several worker threads at once, each thread the
// worker of its own streams (its own worker_id, as Envoy's workers have):
// the Go runtime entered from several foreign threads concurrently.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

bytes unhex_bytes(const char* s);

typedef struct {
  fconfig* c;
  int worker, n;
  bytes body, method;
  int ok, fail;
} job;

static void* worker(void* arg) {
  job* j = arg;
  char cl[32];
  snprintf(cl, sizeof(cl), "%zu", j->body.n);
  for (int i = 0; i < j->n; i++) {
    stream* st = stream_new(-1, j->c->go_id, j->worker,
                            (const char*)(uintptr_t)j->c->hc.plugin_name_ptr, j->c->hc.plugin_name_len);
    h_add(&st->request, ":method", 7, "POST", 4);
    h_add(&st->request, ":path", 5, "/mcp", 4);
    h_add(&st->request, "content-type", 12, "application/json", 16);
    h_add(&st->request, "content-length", 14, cl, strlen(cl));
    int s1 = decode_headers(st, 0);
    int s2 = decode_data(st, j->body.p, j->body.n, 1);
    const header* m = h_get(&st->request, "x-mcp-method", 12);
    int good = s1 == GS_STOP_AND_BUFFER && s2 == GS_CONTINUE && st->up_end &&
               st->up_body.n == j->body.n && m != NULL && m->v.n == j->method.n &&
               memcmp(m->v.p, j->method.p, m->v.n) == 0 && st->capi_errors.n == 0;
    stream_destroy(st);
    if (good) {
      j->ok++;
    } else {
      j->fail++;
    }
    // The stream stays allocated: the Go finalizer calls back with it later.
  }
  return NULL;
}

void burst(fconfig* c, int threads, int n, const char* body_hex, const char* method_hex) {
  if (threads > 4) {
    threads = 4; // the config's concurrency: one request map per worker_id
  }
  pthread_t t[4];
  job jobs[4];
  for (int i = 0; i < threads; i++) {
    memset(&jobs[i], 0, sizeof(job));
    jobs[i].c = c;
    jobs[i].worker = i;
    jobs[i].n = n;
    jobs[i].body = unhex_bytes(body_hex);
    jobs[i].method = unhex_bytes(method_hex);
    pthread_create(&t[i], NULL, worker, &jobs[i]);
  }
  int ok = 0, fail = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(t[i], NULL);
    ok += jobs[i].ok;
    fail += jobs[i].fail;
    b_free(&jobs[i].body);
    b_free(&jobs[i].method);
  }
  printf("burst %d %d\n", ok, fail);
}
