// The command loop: one command per line on stdin, its answer on stdout
// ending with a line ".". Byte strings are hex ("-" for empty); see
// filter/golang/internal/fakehost/host.go for the commands. The main thread
// is the worker of the streams it creates; "burst" runs whole requests on
// several worker threads at once.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"

extern bytes log_lines;
extern atomic_uint log_level;
extern atomic_int config_finalized;
void lock_logs(int lock);

#define MAX_ARGS 8

static fconfig** configs;
static int nconfigs;
static stream** streams;
static int nstreams;

static void hex_out(const char* p, size_t n) {
  if (n == 0) {
    fputs(" -", stdout);
    return;
  }
  fputc(' ', stdout);
  for (size_t i = 0; i < n; i++) {
    printf("%02x", (unsigned char)p[i]);
  }
}

bytes unhex_bytes(const char* s) {
  bytes b = {0};
  b_set(&b, "", 0);
  if (strcmp(s, "-") == 0) {
    return b;
  }
  for (size_t i = 0; s[i] && s[i + 1]; i += 2) {
    unsigned v;
    sscanf(s + i, "%2x", &v);
    char c = (char)v;
    b_append(&b, &c, 1);
  }
  return b;
}

static int load(const char* path) {
  // RTLD_NOW: every callback the .so imports must resolve against this
  // executable (linked with -rdynamic), or loading fails, naming it. Envoy
  // itself loads lazily (dso.cc), which would only fail at the first call.
  void* h = dlopen(path, RTLD_NOW);
  if (h == NULL) {
    printf("err %s\n", dlerror());
    return 0;
  }
  struct {
    void** fn;
    const char* name;
  } syms[] = {
      {(void**)&lib.new_config, "envoyGoFilterNewHttpPluginConfig"},
      {(void**)&lib.merge_config, "envoyGoFilterMergeHttpPluginConfig"},
      {(void**)&lib.destroy_config, "envoyGoFilterDestroyHttpPluginConfig"},
      {(void**)&lib.on_header, "envoyGoFilterOnHttpHeader"},
      {(void**)&lib.on_data, "envoyGoFilterOnHttpData"},
      {(void**)&lib.on_log, "envoyGoFilterOnHttpLog"},
      {(void**)&lib.on_stream_complete, "envoyGoFilterOnHttpStreamComplete"},
      {(void**)&lib.on_destroy, "envoyGoFilterOnHttpDestroy"},
      {(void**)&lib.sema_dec, "envoyGoRequestSemaDec"},
      {(void**)&lib.cleanup, "envoyGoFilterCleanUp"},
  };
  for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
    *syms[i].fn = dlsym(h, syms[i].name);
    if (*syms[i].fn == NULL) { // Envoy's HttpFilterDsoImpl requires all ten
      printf("err missing %s\n", syms[i].name);
      return 0;
    }
  }
  puts("ok");
  return 1;
}

// new_config: FilterConfig::newGoPluginConfig (or RoutePluginConfig's, for
// route 1). The serialized Any lives only during the call, as in Envoy.
static void new_config(const char* plugin, const char* any_hex, int route) {
  fconfig* c = calloc(1, sizeof(fconfig));
  pthread_mutex_init(&c->mu, NULL);
  char* name = strdup(plugin); // Envoy keeps the plugin name for the config's life
  bytes any = unhex_bytes(any_hex);
  c->hc.plugin_name_ptr = (uint64_t)(uintptr_t)name;
  c->hc.plugin_name_len = strlen(name);
  c->hc.config_ptr = (uint64_t)(uintptr_t)any.p;
  c->hc.config_len = any.n;
  c->hc.is_route_config = route;
  c->hc.concurrency = 4; // the shim sizes its per-worker request maps by it
  c->go_id = lib.new_config(&c->hc);
  b_free(&any);
  configs = realloc(configs, (size_t)(nconfigs + 1) * sizeof(fconfig*));
  configs[nconfigs] = c;
  printf("config %d %llu\n", nconfigs++, c->go_id);
}

static void dump_map(const char* tag, const hmap* m) {
  for (size_t i = 0; i < m->n; i++) {
    fputs(tag, stdout);
    hex_out(m->h[i].k.p, m->h[i].k.n);
    hex_out(m->h[i].v.p, m->h[i].v.n);
    fputc('\n', stdout);
  }
}

static void dump(stream* st) {
  run_posted(st);
  pthread_mutex_lock(&st->mu);
  dump_map("req", &st->request);
  dump_map("resp", &st->response);
  printf("upstream %d %d", st->up_headers, st->up_end);
  hex_out(st->up_body.p, st->up_body.n);
  printf("\ndownstream %d\n", st->down_headers);
  for (int i = 0; i < st->nreplies; i++) {
    reply* r = &st->replies[i];
    printf("reply %d", r->status);
    hex_out(r->body.p, r->body.n);
    hex_out(r->details.p, r->details.n);
    hex_out(r->ctype.p, r->ctype.n);
    printf(" %d %d", r->from_encoder, r->panic);
    hex_out(r->sid.p, r->sid.n);
    printf("\n");
  }
  printf("clears %d\ncontinues %d\nfinalized %d\n", st->route_clears, st->continues,
         atomic_load(&st->finalized));
  if (st->capi_errors.n > 0) {
    fputs("errors", stdout);
    hex_out(st->capi_errors.p, st->capi_errors.n);
    fputc('\n', stdout);
  }
  pthread_mutex_unlock(&st->mu);
}

static void counter(fconfig* c, const char* name_hex) {
  bytes name = unhex_bytes(name_hex);
  int defined = 0;
  uint64_t v = 0;
  pthread_mutex_lock(&c->mu);
  for (int i = 0; i < c->n; i++) {
    if (strcmp(c->names[i], name.p) == 0) {
      defined = 1;
      v = c->values[i];
    }
  }
  pthread_mutex_unlock(&c->mu);
  b_free(&name);
  printf("counter %d %llu\n", defined, (unsigned long long)v);
}

void burst(fconfig* c, int threads, int n, const char* body_hex, const char* method_hex);

static void add_header(stream* st, const char* which, const char* k_hex, const char* v_hex) {
  hmap* m = strcmp(which, "req") == 0 ? &st->request
            : strcmp(which, "resp") == 0 ? &st->response
                                         : &st->trailers;
  bytes k = unhex_bytes(k_hex), v = unhex_bytes(v_hex);
  pthread_mutex_lock(&st->mu);
  h_add(m, k.p, k.n, v.p, v.n);
  pthread_mutex_unlock(&st->mu);
  b_free(&k);
  b_free(&v);
}

static stream* stream_arg(const char* s) {
  int i = atoi(s);
  return i >= 0 && i < nstreams ? streams[i] : NULL;
}

// run_stream executes a command on stream st; it returns 0 if unknown.
static int run_stream(stream* st, char** a, int n) {
  const char* cmd = a[0];
  if (strcmp(cmd, "header") == 0 && n == 5) {
    add_header(st, a[2], a[3], a[4]);
    puts("ok");
  } else if (strcmp(cmd, "details") == 0 && n == 3) {
    bytes d = unhex_bytes(a[2]);
    pthread_mutex_lock(&st->mu);
    b_set(&st->details, d.p, d.n);
    pthread_mutex_unlock(&st->mu);
    b_free(&d);
    puts("ok");
  } else if (strcmp(cmd, "decode_headers") == 0 && n == 3) {
    printf("status %d\n", decode_headers(st, atoi(a[2])));
  } else if (strcmp(cmd, "decode_data") == 0 && n == 4) {
    bytes d = unhex_bytes(a[2]);
    printf("status %d\n", decode_data(st, d.p, d.n, atoi(a[3])));
    b_free(&d);
  } else if (strcmp(cmd, "decode_trailers") == 0) {
    printf("status %d\n", decode_trailers(st));
  } else if (strcmp(cmd, "encode_headers") == 0 && n == 3) {
    printf("status %d\n", encode_headers(st, atoi(a[2])));
  } else if (strcmp(cmd, "await") == 0 && n == 3) {
    printf("resumed %d\n", await_resumed(st, atoi(a[2])));
  } else if (strcmp(cmd, "dump") == 0) {
    dump(st);
  } else if (strcmp(cmd, "destroy") == 0) {
    stream_destroy(st);
    puts("ok");
  } else {
    return 0;
  }
  return 1;
}

static fconfig* config_arg(const char* s) {
  int i = atoi(s);
  return i >= 0 && i < nconfigs ? configs[i] : NULL;
}

static void new_stream(fconfig* c, int worker_id) {
  streams = realloc(streams, (size_t)(nstreams + 1) * sizeof(stream*));
  streams[nstreams] = stream_new(nstreams, c->go_id, worker_id,
                                 (const char*)(uintptr_t)c->hc.plugin_name_ptr, c->hc.plugin_name_len);
  printf("stream %d\n", nstreams++);
}

// run executes one command; it returns 0 on quit.
static int run(char** a, int n) {
  const char* cmd = a[0];
  fconfig* c = n > 1 ? config_arg(a[1]) : NULL;
  if (strcmp(cmd, "quit") == 0) {
    return 0;
  } else if (strcmp(cmd, "load") == 0 && n == 2) {
    load(a[1]);
  } else if (strcmp(cmd, "config") == 0 && n == 4) {
    new_config(a[1], a[2], atoi(a[3]));
  } else if (c && strcmp(cmd, "config_destroy") == 0) {
    atomic_store(&c->gone, 1); // weak pointers expire as the destructor starts
    lib.destroy_config(c->go_id, 0);
    puts("ok");
  } else if (c && strcmp(cmd, "counter") == 0 && n == 3) {
    counter(c, a[2]);
  } else if (c && strcmp(cmd, "stream") == 0 && n == 3) {
    new_stream(c, atoi(a[2]));
  } else if (c && strcmp(cmd, "burst") == 0 && n == 6) {
    burst(c, atoi(a[2]), atoi(a[3]), a[4], a[5]);
  } else if (strcmp(cmd, "logs") == 0) {
    lock_logs(1);
    fputs("logs", stdout);
    hex_out(log_lines.p, log_lines.n);
    fputc('\n', stdout);
    lock_logs(0);
  } else if (strcmp(cmd, "loglevel") == 0 && n == 2) {
    atomic_store(&log_level, (unsigned)atoi(a[1]));
    puts("ok");
  } else if (n < 2 || !stream_arg(a[1]) || !run_stream(stream_arg(a[1]), a, n)) {
    printf("err bad command %s\n", cmd);
  }
  return 1;
}

int main(void) {
  char* line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, stdin)) > 0) {
    line[strcspn(line, "\n")] = 0;
    char* a[MAX_ARGS];
    int n = 0;
    for (char* tok = strtok(line, " "); tok && n < MAX_ARGS; tok = strtok(NULL, " ")) {
      a[n++] = tok;
    }
    if (n == 0) {
      continue;
    }
    int more = run(a, n);
    puts(".");
    fflush(stdout);
    if (!more) {
      break;
    }
  }
  // Exit without unloading: a Go runtime cannot be unloaded (dso.h).
  fflush(stdout);
  _exit(0);
}
