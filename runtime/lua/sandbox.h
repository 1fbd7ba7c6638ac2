/* sandbox.h: one lua_State per script set, made safe to run untrusted
 * reconcilers in (doc/architecture.md, "The k8s module"; doc/lua-api.md,
 * "The sandbox").
 *
 * What a sandbox enforces:
 *   - a memory cap: the state's lua_Alloc refuses to grow past the cap, Lua
 *     raises "not enough memory", the call fails and the state stays usable;
 *     the cap counts the bytes Lua asked for; freed small blocks are kept
 *     for reuse (at most LK_POOL_MAX_BYTES) and freed with the state;
 *   - an instruction budget per call (count hook); once spent, the hook raises
 *     on every following instruction, so a script's own pcall cannot outrun it;
 *   - allow-listed globals only: base minus dofile/loadfile/print/
 *     collectgarbage, a text-only load, setmetatable without __gc, string
 *     without dump, table, math, utf8, os.time/clock/date, the k8s module, and a
 *     require that resolves only modules of the script set (text mode);
 *   - isolation between calls: every call gets a fresh environment (its own
 *     globals; its own proxies of the library tables (string, table, math,
 *     utf8, os, k8s and its submodules): empty tables whose __index is the
 *     read-only template, so a write lands in the proxy; its own module
 *     instances: modules are compiled once per script set and their main
 *     chunk re-run in each call's environment), so nothing one reconcile
 *     writes is seen by the next. The few shared objects a script can reach
 *     (k8s.array_mt) are restored after each call; the string metatable and the
 *     terminal-error metatable are protected with __metatable.
 *
 * Every C→Lua call goes through lk_pcall (traceback message handler, budget
 * hook, error classification). Errors carry "file:line: message" with the
 * module's path inside the script set as the file.
 *
 * Ownership: lk_sandbox_new returns an owned sandbox; lk_sandbox_free closes
 * its state. A struct lk_error owns its strings (lk_error_clear frees them). */
#ifndef SCHEDSIM_LUA_SANDBOX_H
#define SCHEDSIM_LUA_SANDBOX_H

#include <stddef.h>

#include <lua.h>

#define LK_DEFAULT_MEMORY_LIMIT ((size_t)64 << 20)
/* ~50x the largest bundled reconcile (under 20 000 instructions, measured
 * with `check --lua-instruction-budget`), ~7 ms of CPU: a looping script
 * costs the loop little before it fails */
#define LK_DEFAULT_INSTRUCTION_BUDGET 1000000L

/* The pool of small blocks (sandbox.c, "The block pool"): blocks of up to
 * LK_POOL_MAX_BLOCK bytes in classes of LK_POOL_GRAIN bytes, at most
 * LK_POOL_MAX_BYTES kept free for reuse. */
#define LK_POOL_GRAIN 16
#define LK_POOL_MAX_BLOCK 512
#define LK_POOL_CLASSES (LK_POOL_MAX_BLOCK / LK_POOL_GRAIN + 1)
#define LK_POOL_MAX_BYTES ((size_t)1 << 20)

struct lk_ctx;

struct lk_sandbox_opts {
  size_t memory_limit;     /* bytes; 0: LK_DEFAULT_MEMORY_LIMIT */
  long instruction_budget; /* per lk_pcall; 0: LK_DEFAULT_INSTRUCTION_BUDGET */
};

enum lk_error_kind {
  LK_ERR_NONE = 0,
  LK_ERR_RUNTIME,  /* error() or a runtime error in a script */
  LK_ERR_TERMINAL, /* k8s.terminal(msg): do not retry until the input changes */
  LK_ERR_MEMORY,   /* the memory cap was hit */
  LK_ERR_BUDGET,   /* the instruction budget was spent */
  LK_ERR_SYNTAX,   /* a module failed to compile */
  LK_ERR_RESULT,   /* the result of a call had the wrong shape */
};

struct lk_error {
  enum lk_error_kind kind;
  char *message;   /* "file:line: text" (owned) */
  char *traceback; /* Lua traceback, or NULL (owned) */
};

struct lk_sandbox {
  lua_State *L;
  size_t memory_used;          /* bytes currently allocated by the state */
  size_t memory_peak;          /* high-water mark */
  size_t memory_limit;         /* the cap */
  int headroom;                /* >0: the cap is lifted by 1 MiB (message handler) */
  int memory_refused;          /* an allocation was refused during the current call */
  long budget;                 /* instructions per call */
  long used;                   /* instructions counted in the current call */
  int exhausted;               /* the budget of the current call is spent */
  char budget_where[256];      /* where the budget ran out ("file:line:") */
  char *traceback;             /* traceback of the last error (owned) */
  struct lk_ctx *ctx;          /* the context of the running call (borrowed), or NULL */
  int chunks_ref;              /* registry ref: module name -> compiled chunk */
  int base_ref;                /* registry ref: the read-only base of every environment */
  int templates_ref;           /* registry ref: library name -> metatable of its proxies */
  int k8ssub_ref;              /* registry ref: k8s submodule name -> metatable of its proxies */
  int envmt_ref;               /* registry ref: metatable of each environment */
  int arraymt_snapshot_ref;    /* registry ref: pristine copy of k8s.array_mt */
  void *pool[LK_POOL_CLASSES]; /* free blocks per size class (a list through their first word) */
  size_t pool_bytes;           /* bytes on those lists */
};

/* Creates a sandbox (opts may be NULL). Returns NULL on allocation failure. */
struct lk_sandbox *lk_sandbox_new(const struct lk_sandbox_opts *opts);
/* Closes the state and frees the sandbox. NULL is a no-op. */
void lk_sandbox_free(struct lk_sandbox *sb);
/* Gives the block pool's free blocks back to malloc (the state keeps what it
 * uses). For an idle operator, before malloc_trim: the pool is a speed-up
 * for bursts, not memory to hold while nothing happens. */
void lk_sandbox_release_pool(struct lk_sandbox *sb);
/* The sandbox a state belongs to (stored in the state's extra space). */
struct lk_sandbox *lk_sandbox_of(lua_State *L);

/* Compiles source (text mode only) as module name, chunk name "@path", and
 * keeps it for require. On a syntax error returns -1 and fills err
 * ("path:line: message"); a later require of name then raises "module
 * 'name' does not compile: <that message>" instead of "not found". */
int lk_sandbox_add_module(struct lk_sandbox *sb, const char *name, const char *path,
                          const char *source, size_t len, struct lk_error *err);

/* Pushes a fresh environment table for one call (see the header comment).
 * Must run inside a protected call (it allocates). */
void lk_sandbox_push_env(lua_State *L);
/* Pushes the result of require(name) in the environment at index env_idx
 * (runs the module's main chunk on first use in that environment). Raises
 * like require. Must run inside a protected call. */
void lk_sandbox_require(lua_State *L, int env_idx, const char *name);

/* Calls the function below nargs arguments on the top of the stack in
 * protected mode with the traceback handler and the instruction budget, and
 * the call context ctx (borrowed for the call; may be NULL). Like lua_pcall:
 * on success leaves nresults results; on error leaves nothing, fills err and
 * returns the non-zero Lua status. The state is collected after an error. */
int lk_pcall(struct lk_sandbox *sb, struct lk_ctx *ctx, int nargs, int nresults,
             struct lk_error *err);

/* Restores the shared objects a script may have changed (k8s.array_mt) and
 * empties the stack; call after each protected call that ran script code. */
void lk_sandbox_after_call(struct lk_sandbox *sb);

/* Raises a terminal error (k8s.terminal) with msg; level as luaL_where. */
int lk_raise_terminal(lua_State *L, const char *msg, int level);

void lk_error_set(struct lk_error *err, enum lk_error_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void lk_error_clear(struct lk_error *err);
const char *lk_error_kind_name(enum lk_error_kind kind);

#endif
