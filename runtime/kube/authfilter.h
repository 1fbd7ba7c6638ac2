/* authfilter.h: authentication and authorization of the secure metrics
 * endpoint by the API server, as controller-runtime's
 * filters.WithAuthenticationAndAuthorization (and kube-rbac-proxy) do:
 *
 *   1. the request's bearer token goes to a TokenReview
 *      (authentication.k8s.io/v1); not authenticated -> 401;
 *   2. the user it names (username, uid, groups, extra) goes to a
 *      SubjectAccessReview (authorization.k8s.io/v1) for the non-resource
 *      URL: nonResourceAttributes {path, verb = lower-cased method};
 *      not allowed -> 403; allowed -> 200.
 *
 * The operator's identity needs `create` on tokenreviews and
 * subjectaccessreviews (deploy/components/metrics-secure); a scraper needs
 * `get` on the non-resource URL /metrics (the metrics-reader ClusterRole).
 *
 * Verdicts are cached per (token, verb, path) by the SHA-256 of the three —
 * never the token itself — for 2 minutes when allowed and 10 s otherwise
 * (kube-rbac-proxy's defaults), 64 entries, the oldest replaced first.
 *
 * Threads: k8s_authfilter_check is called on the HTTP server's connection
 * threads and blocks until the verdict is known; the API calls run on the
 * event loop (posted with k8s_loop_post). k8s_authfilter_close makes every
 * waiting and later check answer 503 without waiting (call it before the
 * loop stops and before the server's threads are joined).
 *
 * Ownership: the caller owns the filter (k8s_authfilter_new / _free) and
 * frees it after the server is stopped; it borrows the loop and the client,
 * which must outlive it. */
#ifndef SCHEDSIM_KUBE_AUTHFILTER_H
#define SCHEDSIM_KUBE_AUTHFILTER_H

struct k8s_authfilter;
struct k8s_loop;
struct k8s_client;

/* timeout: seconds a check waits for the two reviews (0: 10 s). NULL on
 * malloc failure. */
struct k8s_authfilter *k8s_authfilter_new(struct k8s_loop *loop, struct k8s_client *client,
                                          double timeout);
/* The HTTP status for a request: 200 allowed, 401 no or unknown token, 403
 * not permitted, 500 a review failed (its message logged), 503 closing or
 * timed out. token may be NULL (no Authorization: Bearer header). */
int k8s_authfilter_check(struct k8s_authfilter *f, const char *token, const char *method,
                         const char *path);
/* Makes every pending and later check answer 503 at once. Thread-safe. */
void k8s_authfilter_close(struct k8s_authfilter *f);
/* Frees the filter; call it once the loop has stopped running (no review
 * callback can run any more). A review still in flight then is dropped with
 * the client's calls. NULL is a no-op. */
void k8s_authfilter_free(struct k8s_authfilter *f);

#endif
