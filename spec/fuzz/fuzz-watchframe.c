/* fuzz-watchframe.c: libFuzzer target for the watch-stream framer
 * (runtime/core/watchframe.c). The input is fed whole to one framer and in
 * chunks (sizes taken from the first bytes) to another; both must deliver the
 * same events and errors, and a small line limit exercises oversize paths. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/watchframe.h"

struct tally {
  unsigned long events, errors, hash;
};

static void on_event(void *ud, const struct k8s_watch_event *ev)
{
  struct tally *t = ud;
  t->events++;
  t->hash = t->hash * 31 + (unsigned long)ev->type + (unsigned long)ev->code;
  if (ev->resource_version) t->hash += strlen(ev->resource_version);
  if (!json_is_object(ev->object)) abort();
}

static void on_error(void *ud, enum k8s_watchframe_error code, const char *msg)
{
  struct tally *t = ud;
  t->errors++;
  t->hash = t->hash * 37 + (unsigned long)code;
  if (!msg) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2) return 0;
  size_t limit = 16 + data[0] * 4; /* line limit 16..1036 bytes */
  unsigned step = 1 + data[1] % 17;
  data += 2;
  size -= 2;

  struct tally whole = {0}, split = {0};
  struct k8s_watchframe *a = k8s_watchframe_new(on_event, on_error, &whole);
  struct k8s_watchframe *b = k8s_watchframe_new(on_event, on_error, &split);
  k8s_watchframe_set_max_line(a, limit);
  k8s_watchframe_set_max_line(b, limit);
  k8s_watchframe_feed(a, (const char *)data, size);
  k8s_watchframe_finish(a);
  for (size_t off = 0; off < size;) {
    size_t n = size - off < step ? size - off : step;
    k8s_watchframe_feed(b, (const char *)data + off, n);
    off += n;
    step = step * 5 % 23 + 1; /* vary the chunk sizes */
  }
  k8s_watchframe_finish(b);
  if (whole.events != split.events || whole.errors != split.errors || whole.hash != split.hash)
    abort();
  k8s_watchframe_free(a);
  k8s_watchframe_free(b);
  return 0;
}
