/* embedded.h: the trusted runtime Lua files (runtime/lua/NAME.lua) compiled into
 * the binary as C strings by cmake/embed.cmake. */
#ifndef SCHEDSIM_LUA_EMBEDDED_H
#define SCHEDSIM_LUA_EMBEDDED_H

#include <stddef.h>

struct schedsim_embedded {
  const char *name; /* file name without ".lua" */
  const char *source;
  size_t len;
};

/* Terminated by an entry with name NULL. */
extern const struct schedsim_embedded schedsim_embedded_lua[];

/* The embedded file called name, or NULL. */
const struct schedsim_embedded *lk_embedded(const char *name);

#endif
