// gateway owns the local gateway: a small Gateway API implementation for the
// local control plane. It serves every listener of every Gateway whose class
// is in --classes on its own loopback port, follows the HTTPRoutes attached
// to it (PathPrefix/Exact path matches, Exact header matches, weighted
// backendRefs) and forwards:
//   - to a Service backend: round robin over the ready endpoints of its
//     EndpointSlices;
//   - to an InferencePool backend: asks the pool's EPP (endpointPickerRef,
//     resolved through its Service's EndpointSlices) over ext_proc, forwards
//     to the endpoint it picks, and streams the response back through the EPP.
//
// A rule matches when its path matches and every one of its
// matches[].headers (type Exact, or no type; names case-insensitive) equals
// the request's header; of the matching rules the longest path wins, then
// the one with more header matches (Gateway API precedence, without the
// Exact-over-prefix, method and query parameter steps), then the first.
// RegularExpression header matches never match.
//
// It writes Gateway and HTTPRoute status (Accepted, ResolvedRefs, Programmed)
// under its own controller name. It is not Envoy or Istio: no EnvoyFilter or
// DestinationRule processing, no retries, no TLS, no header/redirect filters.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const controllerName = "schedsim.llm-d.io/local-gateway"

var (
	gvrGateway   = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
	gvrRoute     = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
	gvrPool      = schema.GroupVersionResource{Group: "inference.networking.k8s.io", Version: "v1", Resource: "inferencepools"}
	gvrService   = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	gvrEndpoints = schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}
)

type gateway struct {
	dyn     dynamic.Interface
	classes map[string]bool
	dir     string

	informers map[schema.GroupVersionResource]cache.SharedIndexInformer
	mu        sync.Mutex
	listeners map[string]*gwListener // ns/name/listener -> listener
	lastAddr  map[string]string      // ns/name/listener -> its last address, reused when re-created
	rr        atomic.Uint64
	epp       sync.Map // addr -> *grpc.ClientConn
}

type gwListener struct {
	ns, gw, name string
	port         int64 // the listener's port in the Gateway spec
	addr         string
	srv          *http.Server
}

func runGateway(args []string) int {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	dir := fs.String("dir", "", "state dir: writes gateways (one line per listener: NS NAME LISTENER ADDR)")
	classes := fs.String("classes", "istio,schedsim-local", "comma list of gatewayClassNames served")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "gateway: --dir is required")
		return 2
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		log.Printf("gateway: kubeconfig: %v", err)
		return 1
	}
	cfg.QPS, cfg.Burst = 50, 100
	g := &gateway{dyn: dynamic.NewForConfigOrDie(cfg), classes: map[string]bool{}, dir: *dir,
		informers: map[schema.GroupVersionResource]cache.SharedIndexInformer{}, listeners: map[string]*gwListener{}, lastAddr: map[string]string{}}
	for _, c := range strings.Split(*classes, ",") {
		g.classes[strings.TrimSpace(c)] = true
	}
	ctx, stop := signalContext()
	defer stop()
	factory := dynamicinformer.NewDynamicSharedInformerFactory(g.dyn, 0)
	for _, gvr := range []schema.GroupVersionResource{gvrGateway, gvrRoute, gvrPool, gvrService, gvrEndpoints} {
		g.informers[gvr] = factory.ForResource(gvr).Informer()
	}
	resync := func(any) { g.reconcile(ctx) }
	for _, gvr := range []schema.GroupVersionResource{gvrGateway, gvrRoute, gvrPool} {
		_, _ = g.informers[gvr].AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: resync, UpdateFunc: func(_, o any) { resync(o) }, DeleteFunc: resync})
	}
	factory.Start(ctx.Done())
	// The CRDs may be installed later: an informer of a kind not yet served
	// keeps retrying on its own.
	log.Printf("gateway: serving classes %s as %s", *classes, controllerName)
	go func() {
		for ctx.Err() == nil {
			time.Sleep(5 * time.Second)
			g.reconcile(ctx)
		}
	}()
	<-ctx.Done()
	g.mu.Lock()
	for _, l := range g.listeners {
		_ = l.srv.Close()
	}
	g.mu.Unlock()
	return 0
}

func (g *gateway) list(gvr schema.GroupVersionResource) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range g.informers[gvr].GetStore().List() {
		out = append(out, o.(*unstructured.Unstructured))
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].GetNamespace()+"/"+out[i].GetName() < out[j].GetNamespace()+"/"+out[j].GetName()
	})
	return out
}

func (g *gateway) get(gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	o, ok, _ := g.informers[gvr].GetStore().GetByKey(ns + "/" + name)
	if !ok {
		return nil
	}
	return o.(*unstructured.Unstructured)
}

// reconcile opens/closes listeners to match the served Gateways, writes the
// listener file and the Gateway/HTTPRoute status.
func (g *gateway) reconcile(ctx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	want := map[string]bool{}
	for _, gw := range g.list(gvrGateway) {
		class, _, _ := unstructured.NestedString(gw.Object, "spec", "gatewayClassName")
		if !g.classes[class] || gw.GetDeletionTimestamp() != nil {
			continue
		}
		ls, _, _ := unstructured.NestedSlice(gw.Object, "spec", "listeners")
		for _, l := range ls {
			lm, _ := l.(map[string]any)
			name, _ := lm["name"].(string)
			port, _ := lm["port"].(int64)
			key := gw.GetNamespace() + "/" + gw.GetName() + "/" + name
			want[key] = true
			if _, ok := g.listeners[key]; ok {
				continue
			}
			// A Gateway deleted and created again keeps its address if it can.
			ln, err := net.Listen("tcp", g.lastAddr[key])
			if err != nil || g.lastAddr[key] == "" {
				if ln != nil {
					_ = ln.Close()
				}
				ln, err = net.Listen("tcp", "127.0.0.1:0")
			}
			if err != nil {
				log.Printf("gateway: %s: %v", key, err)
				continue
			}
			gl := &gwListener{ns: gw.GetNamespace(), gw: gw.GetName(), name: name, port: port, addr: ln.Addr().String()}
			gl.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serve(gl, w, r) }),
				ReadHeaderTimeout: 30 * time.Second}
			go func() { _ = gl.srv.Serve(ln) }()
			g.listeners[key] = gl
			g.lastAddr[key] = gl.addr
			log.Printf("gateway: %s listening on %s", key, gl.addr)
		}
	}
	for key, l := range g.listeners {
		if !want[key] {
			_ = l.srv.Close()
			delete(g.listeners, key)
			log.Printf("gateway: %s closed", key)
		}
	}
	var lines []string
	for key, l := range g.listeners {
		lines = append(lines, strings.ReplaceAll(key, "/", " ")+" "+l.addr)
	}
	sort.Strings(lines)
	tmp := filepath.Join(g.dir, "gateways.tmp")
	_ = os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	_ = os.Rename(tmp, filepath.Join(g.dir, "gateways"))
	g.writeStatus(ctx)
}

func condition(t, status, reason, msg string, gen int64) map[string]any {
	return map[string]any{"type": t, "status": status, "reason": reason, "message": msg,
		"observedGeneration": gen, "lastTransitionTime": metav1.Now().UTC().Format(time.RFC3339)}
}

// sameConds reports whether two condition lists agree on type/status/reason/generation.
func sameConds(a, b []any) bool {
	key := func(l []any) string {
		var s []string
		for _, c := range l {
			m, _ := c.(map[string]any)
			s = append(s, fmt.Sprint(m["type"], m["status"], m["reason"], m["observedGeneration"]))
		}
		sort.Strings(s)
		return strings.Join(s, ";")
	}
	return key(a) == key(b)
}

func (g *gateway) writeStatus(ctx context.Context) {
	served := map[string]*unstructured.Unstructured{}
	for _, gw := range g.list(gvrGateway) {
		class, _, _ := unstructured.NestedString(gw.Object, "spec", "gatewayClassName")
		if !g.classes[class] {
			continue
		}
		served[gw.GetNamespace()+"/"+gw.GetName()] = gw
		gen := gw.GetGeneration()
		conds := []any{condition("Accepted", "True", "Accepted", "served by "+controllerName, gen),
			condition("Programmed", "True", "Programmed", "listening on loopback (see the cluster's gateways file)", gen)}
		old, _, _ := unstructured.NestedSlice(gw.Object, "status", "conditions")
		if sameConds(old, conds) {
			continue
		}
		patch := map[string]any{"status": map[string]any{"conditions": conds,
			"addresses": []any{map[string]any{"type": "IPAddress", "value": "127.0.0.1"}}}}
		g.patchStatus(ctx, gvrGateway, gw, patch)
	}
	for _, rt := range g.list(gvrRoute) {
		parents, _, _ := unstructured.NestedSlice(rt.Object, "spec", "parentRefs")
		var statuses []any
		for _, p := range parents {
			pm, _ := p.(map[string]any)
			ns, _ := pm["namespace"].(string)
			if ns == "" {
				ns = rt.GetNamespace()
			}
			name, _ := pm["name"].(string)
			if served[ns+"/"+name] == nil {
				continue
			}
			resolved, reason, msg := g.resolveRoute(rt)
			st := "True"
			if !resolved {
				st = "False"
			}
			gen := rt.GetGeneration()
			statuses = append(statuses, map[string]any{
				"parentRef":      pm,
				"controllerName": controllerName,
				"conditions": []any{condition("Accepted", "True", "Accepted", "attached to "+ns+"/"+name, gen),
					condition("ResolvedRefs", st, reason, msg, gen)},
			})
		}
		if len(statuses) == 0 {
			continue
		}
		// Keep other controllers' entries.
		oldParents, _, _ := unstructured.NestedSlice(rt.Object, "status", "parents")
		var keep []any
		same := true
		for _, op := range oldParents {
			m, _ := op.(map[string]any)
			if m["controllerName"] != controllerName {
				keep = append(keep, op)
			}
		}
		var mine []any
		for _, op := range oldParents {
			m, _ := op.(map[string]any)
			if m["controllerName"] == controllerName {
				mine = append(mine, op)
			}
		}
		if len(mine) != len(statuses) {
			same = false
		} else {
			for i := range mine {
				a, _ := mine[i].(map[string]any)["conditions"].([]any)
				b, _ := statuses[i].(map[string]any)["conditions"].([]any)
				if !sameConds(a, b) {
					same = false
				}
			}
		}
		if same {
			continue
		}
		g.patchStatus(ctx, gvrRoute, rt, map[string]any{"status": map[string]any{"parents": append(keep, statuses...)}})
	}
}

func (g *gateway) patchStatus(ctx context.Context, gvr schema.GroupVersionResource, o *unstructured.Unstructured, patch map[string]any) {
	body, _ := json.Marshal(patch)
	_, err := g.dyn.Resource(gvr).Namespace(o.GetNamespace()).Patch(ctx, o.GetName(), "application/merge-patch+json",
		body, metav1.PatchOptions{}, "status")
	if err != nil {
		log.Printf("gateway: status of %s %s/%s: %v", gvr.Resource, o.GetNamespace(), o.GetName(), err)
	}
}

// resolveRoute checks every backendRef of a route exists (ResolvedRefs).
func (g *gateway) resolveRoute(rt *unstructured.Unstructured) (bool, string, string) {
	rules, _, _ := unstructured.NestedSlice(rt.Object, "spec", "rules")
	for _, r := range rules {
		rm, _ := r.(map[string]any)
		refs, _ := rm["backendRefs"].([]any)
		for _, b := range refs {
			bm, _ := b.(map[string]any)
			kind, _ := bm["kind"].(string)
			name, _ := bm["name"].(string)
			ns, _ := bm["namespace"].(string)
			if ns == "" {
				ns = rt.GetNamespace()
			}
			switch kind {
			case "", "Service":
				if g.get(gvrService, ns, name) == nil {
					return false, "BackendNotFound", "Service " + ns + "/" + name + " not found"
				}
			case "InferencePool":
				if g.get(gvrPool, ns, name) == nil {
					return false, "BackendNotFound", "InferencePool " + ns + "/" + name + " not found"
				}
			default:
				return false, "InvalidKind", "backend kind " + kind + " is not supported by the local gateway"
			}
		}
	}
	return true, "ResolvedRefs", "all backends resolved"
}

type backend struct {
	kind, ns, name string
	port           int64
}

// route finds the backend for a request on a listener.
func (g *gateway) route(l *gwListener, r *http.Request) (*backend, error) {
	best, bestLen, bestHeaders := []any(nil), -1, -1
	var bestRoute *unstructured.Unstructured
	for _, rt := range g.list(gvrRoute) {
		parents, _, _ := unstructured.NestedSlice(rt.Object, "spec", "parentRefs")
		attached := false
		for _, p := range parents {
			pm, _ := p.(map[string]any)
			ns, _ := pm["namespace"].(string)
			if ns == "" {
				ns = rt.GetNamespace()
			}
			sec, _ := pm["sectionName"].(string)
			if ns == l.ns && pm["name"] == l.gw && (sec == "" || sec == l.name) {
				attached = true
			}
		}
		if !attached {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(rt.Object, "spec", "rules")
		for _, rule := range rules {
			rm, _ := rule.(map[string]any)
			matches, _ := rm["matches"].([]any)
			if len(matches) == 0 {
				matches = []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/"}}}
			}
			for _, m := range matches {
				mm, _ := m.(map[string]any)
				pm, _ := mm["path"].(map[string]any)
				typ, _ := pm["type"].(string)
				val, _ := pm["value"].(string)
				if val == "" {
					val = "/"
				}
				ok := false
				switch typ {
				case "Exact":
					ok = r.URL.Path == val
				default:
					ok = strings.HasPrefix(r.URL.Path, val)
				}
				headers, _ := mm["headers"].([]any)
				if !ok || !headersMatch(headers, r.Header) {
					continue
				}
				if len(val) > bestLen || (len(val) == bestLen && len(headers) > bestHeaders) {
					best, bestLen, bestHeaders, bestRoute = rm["backendRefs"].([]any), len(val), len(headers), rt
				}
			}
		}
	}
	if bestRoute == nil {
		return nil, fmt.Errorf("no HTTPRoute matches %s on %s/%s", r.URL.Path, l.ns, l.gw)
	}
	if len(best) == 0 {
		return nil, fmt.Errorf("HTTPRoute %s/%s: rule has no backendRefs", bestRoute.GetNamespace(), bestRoute.GetName())
	}
	total := int64(0)
	for _, b := range best {
		w, ok := b.(map[string]any)["weight"].(int64)
		if !ok {
			w = 1
		}
		total += w
	}
	pick := int64(0)
	if total > 0 {
		pick = rand.Int64N(total)
	}
	for _, b := range best {
		bm := b.(map[string]any)
		w, ok := bm["weight"].(int64)
		if !ok {
			w = 1
		}
		if pick < w {
			be := &backend{}
			be.kind, _ = bm["kind"].(string)
			be.name, _ = bm["name"].(string)
			be.ns, _ = bm["namespace"].(string)
			be.port, _ = bm["port"].(int64)
			if be.ns == "" {
				be.ns = bestRoute.GetNamespace()
			}
			if be.kind == "" {
				be.kind = "Service"
			}
			return be, nil
		}
		pick -= w
	}
	return nil, fmt.Errorf("no backend picked")
}

// headersMatch says whether every HTTPRoute header match (type Exact or
// unset) equals the request's header of that name; other types never match.
func headersMatch(matches []any, h http.Header) bool {
	for _, m := range matches {
		hm, _ := m.(map[string]any)
		typ, _ := hm["type"].(string)
		name, _ := hm["name"].(string)
		val, _ := hm["value"].(string)
		if (typ != "" && typ != "Exact") || name == "" {
			return false
		}
		got, present := h[http.CanonicalHeaderKey(name)]
		if !present || len(got) == 0 || got[0] != val {
			return false
		}
	}
	return true
}

// serviceEndpoints lists ready ip:port endpoints of a Service port.
func (g *gateway) serviceEndpoints(ns, name string, port int64) ([]string, error) {
	svc := g.get(gvrService, ns, name)
	if svc == nil {
		return nil, fmt.Errorf("Service %s/%s not found", ns, name)
	}
	// An ExternalName Service naming another Service of the cluster
	// (NAME.NS.svc[.cluster.local]) is followed, as cluster DNS would.
	if t, _, _ := unstructured.NestedString(svc.Object, "spec", "type"); t == "ExternalName" {
		ext, _, _ := unstructured.NestedString(svc.Object, "spec", "externalName")
		parts := strings.Split(strings.TrimSuffix(ext, "."), ".")
		if len(parts) >= 3 && parts[2] == "svc" && !(parts[0] == name && parts[1] == ns) {
			return g.serviceEndpoints(parts[1], parts[0], port)
		}
		return nil, fmt.Errorf("Service %s/%s: ExternalName %q is not a Service of this cluster", ns, name, ext)
	}
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	portName := ""
	found := false
	for _, p := range ports {
		pm := p.(map[string]any)
		if n, _ := pm["port"].(int64); n == port || (port == 0 && len(ports) == 1) {
			portName, _ = pm["name"].(string)
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("Service %s/%s has no port %d", ns, name, port)
	}
	var eps []string
	for _, s := range g.list(gvrEndpoints) {
		if s.GetNamespace() != ns || s.GetLabels()["kubernetes.io/service-name"] != name {
			continue
		}
		sp, _, _ := unstructured.NestedSlice(s.Object, "ports")
		target := int64(0)
		for _, p := range sp {
			pm := p.(map[string]any)
			n, _ := pm["name"].(string)
			if n == portName {
				target, _ = pm["port"].(int64)
			}
		}
		if target == 0 {
			continue
		}
		es, _, _ := unstructured.NestedSlice(s.Object, "endpoints")
		for _, e := range es {
			em := e.(map[string]any)
			if ready, ok, _ := unstructured.NestedBool(em, "conditions", "ready"); ok && !ready {
				continue
			}
			addrs, _ := em["addresses"].([]any)
			if len(addrs) > 0 {
				eps = append(eps, net.JoinHostPort(addrs[0].(string), strconv.FormatInt(target, 10)))
			}
		}
	}
	sort.Strings(eps)
	if len(eps) == 0 {
		return nil, fmt.Errorf("Service %s/%s port %d has no ready endpoints", ns, name, port)
	}
	return eps, nil
}

var served atomic.Uint64

func (g *gateway) serve(l *gwListener, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	be, err := g.route(l, r)
	if err != nil {
		g.fail(w, http.StatusNotFound, err)
		return
	}
	w.Header().Set("x-schedsim-gateway-backend", be.kind+"/"+be.ns+"/"+be.name)
	switch be.kind {
	case "Service":
		eps, err := g.serviceEndpoints(be.ns, be.name, be.port)
		if err != nil {
			g.fail(w, http.StatusServiceUnavailable, err)
			return
		}
		ep := eps[g.rr.Add(1)%uint64(len(eps))]
		resp, err := forwardTo(ep, r, body, nil)
		if err != nil {
			g.fail(w, http.StatusBadGateway, err)
			return
		}
		w.Header().Set("x-schedsim-gateway-endpoint", ep)
		copyResponse(w, resp.status, resp.header, resp.body)
	case "InferencePool":
		g.servePool(be, w, r, body)
	default:
		g.fail(w, http.StatusInternalServerError, fmt.Errorf("backend kind %s not supported", be.kind))
	}
	served.Add(1)
	log.Printf("gateway: %s %s -> %s/%s/%s %s in %s", r.Method, r.URL.Path, be.kind, be.ns, be.name,
		w.Header().Get("x-schedsim-gateway-endpoint"), time.Since(start).Round(time.Microsecond))
}

func (g *gateway) fail(w http.ResponseWriter, code int, err error) {
	log.Printf("gateway: %d: %v", code, err)
	w.Header().Set("x-schedsim-gateway-error", err.Error())
	http.Error(w, "local gateway: "+err.Error(), code)
}

type upstreamResponse struct {
	status int
	header http.Header
	body   []byte
}

func forwardTo(ep string, r *http.Request, body []byte, extra map[string]string) (*upstreamResponse, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+ep+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &upstreamResponse{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func copyResponse(w http.ResponseWriter, status int, h http.Header, body []byte) {
	for k, vs := range h {
		if strings.EqualFold(k, "content-length") {
			continue
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// eppConn returns a cached gRPC connection to an EPP address.
func (g *gateway) eppConn(addr string) (*grpc.ClientConn, error) {
	if c, ok := g.epp.Load(addr); ok {
		return c.(*grpc.ClientConn), nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	if old, loaded := g.epp.LoadOrStore(addr, c); loaded {
		_ = c.Close()
		return old.(*grpc.ClientConn), nil
	}
	return c, nil
}

const destinationHeader = "x-gateway-destination-endpoint"

func headerMap(h http.Header, extra map[string]string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for k, vs := range h {
		for _, v := range vs {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: strings.ToLower(k), RawValue: []byte(v)})
		}
	}
	for k, v := range extra {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
	}
	return hm
}

// servePool runs one request through the pool's EPP: request headers and
// body go to ext_proc, the picked endpoint serves, the response goes back
// through ext_proc (so the EPP sees the request complete).
func (g *gateway) servePool(be *backend, w http.ResponseWriter, r *http.Request, body []byte) {
	pool := g.get(gvrPool, be.ns, be.name)
	if pool == nil {
		g.fail(w, http.StatusServiceUnavailable, fmt.Errorf("InferencePool %s/%s not found", be.ns, be.name))
		return
	}
	eprName, _, _ := unstructured.NestedString(pool.Object, "spec", "endpointPickerRef", "name")
	eprPort, _, _ := unstructured.NestedInt64(pool.Object, "spec", "endpointPickerRef", "port", "number")
	eppEps, err := g.serviceEndpoints(be.ns, eprName, eprPort)
	if err != nil {
		g.fail(w, http.StatusServiceUnavailable, fmt.Errorf("InferencePool %s/%s endpointPickerRef: %w", be.ns, be.name, err))
		return
	}
	eppAddr := eppEps[0]
	conn, err := g.eppConn(eppAddr)
	if err != nil {
		g.fail(w, http.StatusBadGateway, err)
		return
	}
	// The stream is not tied to the client's request context: the EPP must
	// see the response complete even if the client goes away.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	stream, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		g.fail(w, http.StatusBadGateway, fmt.Errorf("EPP %s: %w", eppAddr, err))
		return
	}
	pseudo := map[string]string{":method": r.Method, ":path": r.URL.RequestURI(), ":authority": r.Host, ":scheme": "http"}
	send := func(req *extprocv3.ProcessingRequest) error { return stream.Send(req) }
	if err := send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(r.Header, pseudo)}}}); err != nil {
		g.fail(w, http.StatusBadGateway, fmt.Errorf("EPP %s: send headers: %w", eppAddr, err))
		return
	}
	if err := send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}}); err != nil {
		g.fail(w, http.StatusBadGateway, fmt.Errorf("EPP %s: send body: %w", eppAddr, err))
		return
	}
	setHeaders := map[string]string{}
	var newBody []byte
	bodyMutated := false
	for done := false; !done; {
		resp, err := stream.Recv()
		if err != nil {
			g.fail(w, http.StatusBadGateway, fmt.Errorf("EPP %s: %w", eppAddr, err))
			return
		}
		switch v := resp.Response.(type) {
		case *extprocv3.ProcessingResponse_ImmediateResponse:
			ir := v.ImmediateResponse
			code := int(ir.GetStatus().GetCode())
			if code == 0 {
				code = http.StatusServiceUnavailable
			}
			w.Header().Set("x-schedsim-gateway-error", "EPP immediate response: "+ir.GetDetails())
			copyResponse(w, code, http.Header{}, ir.Body)
			return
		case *extprocv3.ProcessingResponse_RequestHeaders:
			for _, h := range v.RequestHeaders.GetResponse().GetHeaderMutation().GetSetHeaders() {
				val := h.GetHeader().GetValue()
				if len(h.GetHeader().GetRawValue()) > 0 {
					val = string(h.GetHeader().GetRawValue())
				}
				setHeaders[h.GetHeader().GetKey()] = val
			}
		case *extprocv3.ProcessingResponse_RequestBody:
			bm := v.RequestBody.GetResponse().GetBodyMutation()
			if sr := bm.GetStreamedResponse(); sr != nil {
				newBody = append(newBody, sr.Body...)
				bodyMutated = true
				done = sr.EndOfStream
			} else {
				if b := bm.GetBody(); b != nil {
					newBody, bodyMutated = b, true
				}
				done = true
			}
		}
	}
	dest := setHeaders[destinationHeader]
	if i := strings.Index(dest, ","); i >= 0 {
		dest = dest[:i]
	}
	if dest == "" {
		g.fail(w, http.StatusBadGateway, fmt.Errorf("EPP %s set no %s", eppAddr, destinationHeader))
		return
	}
	if bodyMutated {
		body = newBody
	}
	extra := map[string]string{}
	for k, v := range setHeaders {
		if !strings.HasPrefix(k, ":") && !strings.EqualFold(k, "content-length") {
			extra[k] = v
		}
	}
	up, err := forwardTo(dest, r, body, extra)
	if err != nil {
		g.fail(w, http.StatusBadGateway, fmt.Errorf("endpoint %s (picked by EPP): %w", dest, err))
		_ = stream.CloseSend()
		return
	}
	// The response through the EPP: headers, then the body in one chunk.
	rh := up.header.Clone()
	_ = send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(rh, map[string]string{":status": strconv.Itoa(up.status), "status": strconv.Itoa(up.status)})}}})
	_ = send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: up.body, EndOfStream: true}}})
	_ = stream.CloseSend()
	for {
		resp, err := stream.Recv()
		if err != nil {
			break
		}
		if rb, ok := resp.Response.(*extprocv3.ProcessingResponse_ResponseBody); ok {
			if rb.ResponseBody.GetResponse().GetBodyMutation().GetStreamedResponse().GetEndOfStream() {
				break
			}
		}
	}
	w.Header().Set("x-schedsim-gateway-endpoint", dest)
	w.Header().Set("x-schedsim-gateway-epp", eppAddr)
	copyResponse(w, up.status, up.header, up.body)
}
