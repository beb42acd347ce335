// The request-level, log and config callbacks (api.h, second half): route
// cache, stream info, metrics, logging, finalizers.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

CAPIStatus envoyGoFilterHttpClearRouteCache(void* r, bool refresh) {
  (void)refresh;
  stream* st = r;
  CAPIStatus res = check_filter(st, "ClearRouteCache");
  if (res != CAPIOK) {
    return res;
  }
  if (on_worker(st)) {
    pthread_mutex_lock(&st->mu);
    st->route_clears++;
    pthread_mutex_unlock(&st->mu);
  } else {
    post* w = calloc(1, sizeof(post));
    w->kind = P_CLEAR_ROUTE;
    enqueue(st, w);
  }
  return CAPIOK;
}

// Only ResponseCodeDetails (EnvoyValue 5) has a value here. The pointer stays
// valid until the next call (Envoy: req_->strValue); the shim copies it.
CAPIStatus envoyGoFilterHttpGetStringValue(void* r, int id, uint64_t* value_data, int* value_len) {
  stream* st = r;
  CAPIStatus res = check_filter(st, "GetStringValue");
  if (res != CAPIOK) {
    return res;
  }
  pthread_mutex_lock(&st->mu);
  if (id != 5 || st->details.n == 0) {
    res = CAPIValueNotFound;
  } else {
    *value_data = (uint64_t)(uintptr_t)st->details.p;
    *value_len = (int)st->details.n;
  }
  pthread_mutex_unlock(&st->mu);
  return res;
}

CAPIStatus envoyGoFilterHttpGetIntegerValue(void* r, int id, uint64_t* value) {
  (void)id, (void)value;
  CAPIStatus res = check_filter(r, "GetIntegerValue");
  return res == CAPIOK ? CAPIValueNotFound : res;
}

CAPIStatus envoyGoFilterHttpGetDynamicMetadata(void* r, void* name_data, int name_len,
                                               uint64_t* value_data, int* value_len) {
  (void)name_data, (void)name_len, (void)value_data, (void)value_len;
  return unexpected(r, "GetDynamicMetadata");
}

CAPIStatus envoyGoFilterHttpSetDynamicMetadata(void* r, void* name_data, int name_len,
                                               void* key_data, int key_len, void* buf_data,
                                               int buf_len) {
  (void)name_data, (void)name_len, (void)key_data, (void)key_len, (void)buf_data, (void)buf_len;
  return unexpected(r, "SetDynamicMetadata");
}

// Called by a Go finalizer, on a Go thread, once the shim's request object
// is garbage (after OnDestroy). The stream memory is kept: it is small, and
// the test may still read it.
void envoyGoFilterHttpFinalize(void* r, int reason) {
  (void)reason;
  atomic_fetch_add(&((stream*)r)->finalized, 1);
}

CAPIStatus envoyGoFilterHttpSetStringFilterState(void* r, void* key_data, int key_len,
                                                 void* value_data, int value_len, int state_type,
                                                 int life_span, int stream_sharing) {
  (void)key_data, (void)key_len, (void)value_data, (void)value_len;
  (void)state_type, (void)life_span, (void)stream_sharing;
  return unexpected(r, "SetStringFilterState");
}

CAPIStatus envoyGoFilterHttpGetStringFilterState(void* r, void* key_data, int key_len,
                                                 uint64_t* value_data, int* value_len) {
  (void)key_data, (void)key_len, (void)value_data, (void)value_len;
  return unexpected(r, "GetStringFilterState");
}

CAPIStatus envoyGoFilterHttpGetStringProperty(void* r, void* key_data, int key_len,
                                              uint64_t* value_data, int* value_len, int* rc) {
  (void)key_data, (void)key_len, (void)value_data, (void)value_len, (void)rc;
  return unexpected(r, "GetStringProperty");
}

CAPIStatus envoyGoFilterHttpGetStringSecret(void* r, void* key_data, int key_len,
                                            uint64_t* value_data, int* value_len) {
  (void)key_data, (void)key_len, (void)value_data, (void)value_len;
  return unexpected(r, "GetStringSecret");
}

CAPIStatus envoyGoFilterHttpSetDrainConnectionUponCompletion(void* r) {
  return unexpected(r, "SetDrainConnectionUponCompletion");
}

// Logging: thread-safe, as Envoy's logger is.
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
bytes log_lines; // "<level> <message>\n" each; read by main.c
atomic_uint log_level = 0; // spdlog order: 0 trace ... 5 critical

void envoyGoFilterLog(uint32_t level, void* message_data, int message_len) {
  char lv[16];
  snprintf(lv, sizeof(lv), "%u ", level);
  pthread_mutex_lock(&log_mu);
  b_append(&log_lines, lv, strlen(lv));
  for (int i = 0; i < message_len; i++) { // one line per record
    char c = ((char*)message_data)[i];
    b_append(&log_lines, c == '\n' ? " " : &c, 1);
  }
  b_append(&log_lines, "\n", 1);
  pthread_mutex_unlock(&log_mu);
}

uint32_t envoyGoFilterLogLevel(void) { return atomic_load(&log_level); }

void lock_logs(int lock) {
  if (lock) {
    pthread_mutex_lock(&log_mu);
  } else {
    pthread_mutex_unlock(&log_mu);
  }
}

atomic_int config_finalized;

// A Go finalizer: the shim's config object is garbage.
void envoyGoConfigHttpFinalize(void* c) {
  (void)c;
  atomic_fetch_add(&config_finalized, 1);
}

// envoyGoConfigHandlerWrapper: the config must still exist in Envoy.
static CAPIStatus config_alive(fconfig* c) {
  return atomic_load(&c->gone) ? CAPIFilterIsGone : CAPIOK;
}

CAPIStatus envoyGoFilterHttpDefineMetric(void* c, uint32_t metric_type, void* name_data,
                                         int name_len, uint32_t* metric_id) {
  fconfig* fc = c;
  if (config_alive(fc) != CAPIOK) {
    return CAPIFilterIsGone;
  }
  if (metric_type > 2) {
    return CAPIValueNotFound;
  }
  pthread_mutex_lock(&fc->mu);
  int id = -1;
  for (int i = 0; i < fc->n; i++) { // same name, same metric (one stats scope)
    if (strlen(fc->names[i]) == (size_t)name_len && memcmp(fc->names[i], name_data, name_len) == 0) {
      id = i;
    }
  }
  if (id < 0 && fc->n < 64) {
    id = fc->n++;
    fc->names[id] = strndup(name_data, (size_t)name_len);
  }
  pthread_mutex_unlock(&fc->mu);
  if (id < 0) {
    return CAPIInternalFailure;
  }
  *metric_id = (uint32_t)id;
  return CAPIOK;
}

CAPIStatus envoyGoFilterHttpIncrementMetric(void* c, uint32_t metric_id, int64_t offset) {
  fconfig* fc = c;
  if (config_alive(fc) != CAPIOK) {
    return CAPIFilterIsGone;
  }
  pthread_mutex_lock(&fc->mu);
  if ((int)metric_id < fc->n && offset > 0) { // Envoy ignores non-positive counter offsets
    fc->values[metric_id] += (uint64_t)offset;
  }
  pthread_mutex_unlock(&fc->mu);
  return CAPIOK;
}

CAPIStatus envoyGoFilterHttpGetMetric(void* c, uint32_t metric_id, uint64_t* value) {
  fconfig* fc = c;
  if (config_alive(fc) != CAPIOK) {
    return CAPIFilterIsGone;
  }
  pthread_mutex_lock(&fc->mu);
  *value = (int)metric_id < fc->n ? fc->values[metric_id] : 0;
  pthread_mutex_unlock(&fc->mu);
  return CAPIOK;
}

CAPIStatus envoyGoFilterHttpRecordMetric(void* c, uint32_t metric_id, uint64_t value) {
  fconfig* fc = c;
  if (config_alive(fc) != CAPIOK) {
    return CAPIFilterIsGone;
  }
  pthread_mutex_lock(&fc->mu);
  if ((int)metric_id < fc->n) {
    fc->values[metric_id] = value;
  }
  pthread_mutex_unlock(&fc->mu);
  return CAPIOK;
}
