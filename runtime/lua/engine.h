/* engine.h: runs reconcilers of a script set in its sandbox and turns their
 * results into what the runtime writes (doc/architecture.md, "The reconcile
 * contract" and the numbered list after it). The operator (controller.c),
 * render, check and the fixture tests all go through lk_engine_reconcile, so
 * they produce the same objects.
 *
 * One reconcile:
 *   1. observed = the children of every `owns` kind carrying the CR's owner
 *      label (all namespaces), read from the cache source;
 *   2. reconcile(cr, observed, ctx) in a fresh sandbox environment;
 *   3. the result is validated (errors name the field: "result.children[0].
 *      metadata.name: ...", indexes 0-based as in Kubernetes field paths);
 *   4. every child is decorated: namespace defaulted to the CR's (namespaced
 *      kinds), labels app.kubernetes.io/managed-by and sim.llm-d.io/owner, a
 *      controller ownerReference when in the CR's namespace, and the
 *      annotation sim.llm-d.io/desired-hash = sha256 of the canonical JSON
 *      (keys sorted, compact) of the decorated child without that annotation;
 *   5. each child is classified: APPLY (missing or another hash), UNCHANGED,
 *      or CONFLICT (an object of that name exists without our owner label);
 *      observed children no longer desired go to the prune list;
 *   6. the status to write = the script's status (or the observed one when
 *      the script returns none) + observedGeneration + scriptRevision, with
 *      Ready=False/Conflict when a child conflicts; status_changed says
 *      whether it differs from the CR's status.
 * A failed reconcile gives the observed status with Ready=False, reason
 * ReconcileError (or InvalidSpec for k8s.terminal) and message "file:line: ...".
 * With a deletionTimestamp the call is a finalizing one (ctx.finalizing):
 * children are not applied, every observed child is in the prune list, no
 * status is written.
 *
 * Ownership: lk_engine_new takes ownership of the script set. A struct
 * lk_result owns everything it points to (lk_result_free). Inputs are
 * borrowed for the call. */
#ifndef SCHEDSIM_LUA_ENGINE_H
#define SCHEDSIM_LUA_ENGINE_H

#include <stddef.h>

#include <jansson.h>

#include "lua/context.h"
#include "lua/sandbox.h"
#include "lua/scriptset.h"

#define LK_LABEL_MANAGED_BY "app.kubernetes.io/managed-by"
#define LK_MANAGED_BY "schedsim-operator"
#define LK_LABEL_OWNER "sim.llm-d.io/owner"
#define LK_ANNOTATION_HASH "sim.llm-d.io/desired-hash"
#define LK_FINALIZER "sim.llm-d.io/cleanup"

/* {====================================================================
 * Messages (check)
 * ===================================================================== */

/* A list of "file:line: message" strings. A zeroed struct is empty. */
struct lk_messages {
  char **v;
  size_t n, cap;
};
void lk_messages_add(struct lk_messages *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void lk_messages_free(struct lk_messages *m);

/* }==================================================================== */

struct lk_watch_decl {
  struct lk_gvk gvk;
  char *map;        /* "module.function", or NULL: every CR of the controller */
  char *map_module; /* "module" */
  char *map_fn;     /* "function" */
  int owned_only;   /* owned_only = true: only the operator's own objects of the kind
                       are needed (cached by the managed-by label) */
};

struct lk_controller_decl {
  char *name;
  struct lk_gvk for_;
  char *module;
  struct lk_gvk *owns;
  size_t nowns;
  struct lk_watch_decl *watches;
  size_t nwatches;
  struct lk_gvk *kinds; /* for_, owns, watches: what k8s.cache may read */
  size_t nkinds;
  int valid; /* the module loads and exports reconcile (and the maps resolve) */
};

struct lk_engine_opts {
  size_t memory_limit;     /* 0: LK_DEFAULT_MEMORY_LIMIT */
  long instruction_budget; /* 0: LK_DEFAULT_INSTRUCTION_BUDGET */
};

struct lk_engine {
  struct lk_sandbox *sb;
  struct lk_scriptset *set;
  struct lk_controller_decl *controllers;
  size_t ncontrollers;
  size_t memory_loaded; /* sandbox bytes once the set is loaded */
};

/* Loads set (ownership taken, also on failure) into a new sandbox: compiles
 * every module, reads and validates controllers.lua, loads every reconciler
 * and checks it exports reconcile. Every problem is added to msgs (may be
 * NULL) as "file[:line]: message". Returns the number of problems (0: all
 * good) and stores the engine in *out even when there were problems (for
 * check; controllers with problems have valid = 0), or -1 on allocation
 * failure (*out NULL). */
int lk_engine_new(struct lk_scriptset *set, const struct lk_engine_opts *opts,
                  struct lk_engine **out, struct lk_messages *msgs);
void lk_engine_free(struct lk_engine *e);
/* Gives memory the engine keeps only for speed back to malloc (its sandbox's
 * block pool, lk_sandbox_release_pool); call when idle. NULL is a no-op. */
void lk_engine_trim(struct lk_engine *e);

/* 1 when a is apiVersion av, kind kind. */
int lk_gvk_is(const struct lk_gvk *a, const char *av, const char *kind);

const struct lk_controller_decl *lk_engine_controller(const struct lk_engine *e, const char *name);
/* The controller reconciling apiVersion+kind, or NULL. */
const struct lk_controller_decl *
lk_engine_controller_for(const struct lk_engine *e, const char *api_version, const char *kind);

/* Which namespaces a CR may write children into besides its own
 * (doc/security.md). */
enum lk_grants {
  LK_GRANTS_LABELS = 0, /* namespace N is granted to a CR in namespace C when
                           the Namespace object N (read from the cache source,
                           v1 Namespace) carries the label
                           allow-from.sim.llm-d.io/C: "true" */
  LK_GRANTS_ALL,        /* every namespace (render, fixtures: offline) */
};
#define LK_GRANT_LABEL_PREFIX "allow-from.sim.llm-d.io/"

/* What the runtime remembers of its own writes of a child (controller.c),
 * so that the engine can classify against writes the cache does not show
 * yet. lookup returns 1 and sets *owner (the owner label value the child was
 * last written for) and *rv_after (the resourceVersion that write produced,
 * "" while it is in flight), both borrowed until the call returns; 0 when
 * nothing is remembered. */
struct lk_write_memory {
  int (*lookup)(void *ud, const char *api_version, const char *kind, const char *ns,
                const char *name, const char **owner, const char **rv_after);
  void *ud;
};

struct lk_reconcile_in {
  const struct lk_controller_decl *controller;
  const json_t *cr; /* the CR as cached */
  const struct lk_cache_source *cache;
  const struct lk_discovery_source *discovery;
  const char *now; /* RFC 3339; NULL: the wall clock */
  lk_log_fn log;   /* NULL: core/log.h */
  void *log_data;
  const struct k8s_log_field *log_fields; /* controller, key, reconcileID */
  size_t nlog_fields;
  enum lk_grants grants;
  const struct lk_write_memory *writes; /* NULL: nothing remembered */
};

enum lk_child_action {
  LK_CHILD_APPLY = 0, /* missing, carries another desired-hash, or drifted */
  LK_CHILD_UNCHANGED, /* same desired-hash, and our field manager still owns every field */
  LK_CHILD_CONFLICT,  /* exists, or is being written, for another owner: not applied */
  LK_CHILD_REFUSED,   /* outside the security boundary (boundary.c): never written */
  LK_CHILD_HELD,      /* would be applied, but another child is in CONFLICT or
                         REFUSED: nothing of a half-built set is written */
};

struct lk_child {
  json_t *obj;                    /* decorated child (owned reference) */
  const char *api_version, *kind; /* borrowed from obj */
  const char *ns;                 /* "" for cluster-scoped */
  const char *name;
  char hash[65];
  enum lk_child_action action;
  char *owner;        /* CONFLICT: the current owner label value, "" when unmanaged */
  const char *reason; /* CONFLICT "Conflict"; REFUSED the boundary rule's reason
                         (NamespaceNotGranted, KindRefused, IdentityRefused,
                         PodSpecRefused, RoleRuleRefused); APPLY "Drift" when
                         the live object lost fields we own; else NULL. Static. */
  char *why;          /* CONFLICT/REFUSED/drift: a message naming the object,
                         the field and the rule (owned), or NULL */
  int observed;       /* an object of this name carries the CR's owner label */
  int probe;          /* APPLY of a name the cache cannot vouch for: it caches only
                         the operator's own objects of this kind, so an object of
                         another owner may exist; the runtime GETs it first */
};

/* An observed child (prune list) */
struct lk_ref {
  char *api_version, *kind, *ns, *name;
  int deleting; /* already has a deletionTimestamp */
};

struct lk_result {
  struct lk_error err;       /* kind LK_ERR_NONE on success */
  int finalizing;            /* the CR has a deletionTimestamp */
  int finalized;             /* finalizing: the script is done (default true) */
  struct lk_child *children; /* script order */
  size_t nchildren;
  size_t nconflicts;
  size_t nrefused;
  struct lk_ref *prune; /* observed children to delete */
  size_t nprune;
  size_t nobserved;     /* observed children (all owns kinds) */
  json_t *status;       /* the status to write (never NULL after a reconcile) */
  int status_changed;   /* status differs from the CR's status */
  double requeue_after; /* seconds; 0: none */
  json_t *events;       /* array of { type, reason, message } */
  double lua_seconds;   /* time in the sandbox (decode, reconcile, encode) */
  double total_seconds; /* the whole lk_engine_reconcile */
};
void lk_result_free(struct lk_result *r);

/* 1 when the CR needs the cleanup finalizer LK_FINALIZER: some child of r
 * (desired, or observed and about to be pruned) lives outside cr_ns or is
 * cluster-scoped. Owner references cannot tie those to the CR (a namespaced
 * owner only owns dependents in its own namespace: the garbage collector's
 * rule), so deleting the CR must wait for the operator to delete them. 0 when
 * every child is in cr_ns (those get owner references; no finalizer, no
 * extra write). A cluster-scoped CR (cr_ns NULL or "") gives its children no
 * owner references, so it needs the finalizer whenever it has children. */
int lk_result_needs_finalizer(const struct lk_result *r, const char *cr_ns);

/* The result as JSON (new reference), for render, fixtures and k8sengine:
 * { children = [...], actions = [{ apiVersion, kind, namespace, name, action,
 *   owner? }], prune = [{ apiVersion, kind, namespace, name }], status,
 *   status_changed, requeue_after?, events, finalizing, finalized,
 *   error?, error_kind?, traceback?, lua_seconds }. action is "apply",
 * "unchanged" or "conflict". */
json_t *lk_result_to_json(const struct lk_result *r);

/* Runs one reconcile (see the header comment). Returns 0 when the reconcile
 * succeeded, 1 when it failed (r->err says why; r->status is still set), -1
 * on an input error (the CR lacks apiVersion/kind/metadata.name; r->err set). */
int lk_engine_reconcile(struct lk_engine *e, const struct lk_reconcile_in *in, struct lk_result *r);

/* Runs the map function of watch w of controller c for obj (a watched
 * object): the keys ("ns/name") of the CRs to reconcile, as a JSON array of
 * strings in *keys (new reference). Returns 0, or -1 with err set. When the
 * cache has a store of c's CR kind and it is empty, the map is not run and
 * *keys is empty (no key could name a CR; spec/c/test-engine-map.c). */
int lk_engine_map(struct lk_engine *e, const struct lk_controller_decl *c, size_t w,
                  const json_t *obj, const struct lk_cache_source *cache,
                  const struct lk_discovery_source *discovery, json_t **keys, struct lk_error *err);

/* Runs code (a Lua chunk, text) in a fresh environment of the sandbox with
 * the budget, and converts its first result to JSON (*out, new reference;
 * JSON null for nil). For tests of the sandbox. ctx may be NULL. Returns 0 or
 * -1 with err set. */
int lk_engine_eval(struct lk_engine *e, const char *code, size_t len, struct lk_ctx *ctx,
                   json_t **out, struct lk_error *err);

/* Sets condition type in status (a JSON object: the CR's status to write)
 * following the Kubernetes API convention for conditions: status "True",
 * "False" or "Unknown", a CamelCase reason, a message (cut at 32 KiB),
 * lastTransitionTime kept from cr_status's condition of that type when its
 * status is the same (else now; NULL: the wall clock), and
 * observedGeneration when generation (borrowed) is given. */
void lk_status_condition(json_t *status, const json_t *cr_status, const char *type, const char *st,
                         const char *reason, const char *message, const char *now,
                         json_t *generation);

/* When the runtime decides Ready (a script error, a refused or conflicting
 * child, a failed write), the script's Events describe an outcome that did
 * not happen: they are replaced by one Warning Event (reason, message) —
 * only when cr_status's Ready condition had another reason, so a state that
 * persists is not announced again on every retry. */
void lk_result_override_events(struct lk_result *r, const json_t *cr_status, const char *reason,
                               const char *message);

/* The owner label value for a CR (core/util.h rule) into out (64 bytes). */
void lk_owner_value(const json_t *cr, char out[64]);

#endif
