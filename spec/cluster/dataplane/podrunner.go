// podrunner owns the served pods: for every pod bound to the kwok node whose
// image is in the image table, it starts the real binary as a local process
// with the pod's args and env, its ConfigMap volumes as files, a kubeconfig
// made from a TokenRequest for its ServiceAccount, on the pod's own IP (one
// TCP forwarder per container port to the process's private loopback port),
// writes the pod's status (IP, Running, Ready only once the readiness probe
// passes) and stops the process when the pod goes. kwok leaves these pods
// alone (the launcher's --serve-images excludes them from its pod-ready stage).
package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// servedImage is one row of the image table: an image repository, the binary
// that serves it, the version that binary was built from, and the flags that
// carry its listening ports (with their defaults when the flag is absent).
type servedImage struct {
	repo      string
	binary    string
	version   string
	portFlags []portFlag
}

type portFlag struct {
	flag string
	def  int
}

func imageTable(binDir string) []servedImage {
	ver := func(name, def string) string {
		b, err := os.ReadFile(filepath.Join(binDir, name+".version"))
		if err != nil {
			return def
		}
		return strings.TrimSpace(string(b))
	}
	return []servedImage{
		{"ghcr.io/llm-d/llm-d-inference-sim", filepath.Join(binDir, "llm-d-inference-sim"),
			ver("llm-d-inference-sim", "?"), []portFlag{{"--port", 8000}}},
		{"ghcr.io/llm-d/llm-d-inference-scheduler", filepath.Join(binDir, "epp"),
			ver("epp", "?"), []portFlag{{"--grpc-port", 9002}, {"--grpc-health-port", 9003}, {"--metrics-port", 9090}}},
	}
}

// splitImage returns repository and tag ("" when untagged) of an image reference.
func splitImage(image string) (string, string) {
	ref := image
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	slash := strings.LastIndex(ref, "/")
	if c := strings.LastIndex(ref, ":"); c > slash {
		return ref[:c], ref[c+1:]
	}
	return ref, ""
}

type podRunner struct {
	client  kubernetes.Interface
	restCfg *rest.Config
	dir     string
	images  []servedImage
	ipBase  [2]byte // pod IPs are 10.245.X.Y: ipBase = {10, 245}

	mu     sync.Mutex
	pods   map[types.UID]*runningPod
	nextIP int
}

type runningPod struct {
	uid       types.UID
	ns, name  string
	ip        string
	cmd       *exec.Cmd
	listeners []net.Listener
	private   map[int]int // container port -> the process's loopback port
	cancel    context.CancelFunc
	done      chan struct{}
	restarts  int32
}

func runPodRunner(args []string) int {
	fs := flag.NewFlagSet("podrunner", flag.ContinueOnError)
	dir := fs.String("dir", "", "state dir: pods/<ns>_<name>/ (files, log) and pods/<ns>_<name>.log")
	binDir := fs.String("bin-dir", "", "directory holding llm-d-inference-sim, epp and their .version files")
	cidr := fs.String("cidr", "10.245.0.0/16", "pod IPs of served pods (must be local addresses, e.g. on lo in a private netns)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || *binDir == "" {
		fmt.Fprintln(os.Stderr, "podrunner: --dir and --bin-dir are required")
		return 2
	}
	ip, _, err := net.ParseCIDR(*cidr)
	if err != nil || ip.To4() == nil {
		fmt.Fprintf(os.Stderr, "podrunner: bad --cidr %q\n", *cidr)
		return 2
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		log.Printf("podrunner: kubeconfig: %v", err)
		return 1
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	r := &podRunner{client: client, restCfg: cfg, dir: *dir, images: imageTable(*binDir),
		pods: map[types.UID]*runningPod{}, nextIP: 2}
	r.ipBase = [2]byte{ip.To4()[0], ip.To4()[1]}
	for _, im := range r.images {
		if _, err := os.Stat(im.binary); err != nil {
			log.Printf("podrunner: %s: no binary %s: its pods stay kwok fakes", im.repo, im.binary)
		} else {
			log.Printf("podrunner: %s -> %s (built version %s)", im.repo, im.binary, im.version)
		}
	}
	if err := os.MkdirAll(filepath.Join(*dir, "pods"), 0o755); err != nil {
		log.Printf("podrunner: %v", err)
		return 1
	}

	ctx, stop := signalContext()
	defer stop()
	factory := informers.NewSharedInformerFactory(client, 0)
	inf := factory.Core().V1().Pods().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { r.sync(ctx, o.(*corev1.Pod)) },
		UpdateFunc: func(_, o any) { r.sync(ctx, o.(*corev1.Pod)) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				r.stopPod(p.UID, "deleted")
			}
		},
	})
	factory.Start(ctx.Done())
	log.Printf("podrunner: watching pods; logs in %s/pods", *dir)
	<-ctx.Done()
	r.mu.Lock()
	uids := make([]types.UID, 0, len(r.pods))
	for uid := range r.pods {
		uids = append(uids, uid)
	}
	r.mu.Unlock()
	for _, uid := range uids {
		r.stopPod(uid, "shutting down")
	}
	return 0
}

func (r *podRunner) served(p *corev1.Pod) *servedImage {
	if len(p.Spec.Containers) == 0 {
		return nil
	}
	repo, _ := splitImage(p.Spec.Containers[0].Image)
	for i := range r.images {
		if r.images[i].repo == repo {
			if _, err := os.Stat(r.images[i].binary); err != nil {
				return nil
			}
			return &r.images[i]
		}
	}
	return nil
}

func (r *podRunner) sync(ctx context.Context, p *corev1.Pod) {
	if p.DeletionTimestamp != nil {
		r.stopPod(p.UID, "terminating")
		return
	}
	if p.Spec.NodeName == "" {
		return
	}
	im := r.served(p)
	if im == nil {
		return
	}
	r.mu.Lock()
	if _, ok := r.pods[p.UID]; ok {
		r.mu.Unlock()
		return
	}
	ip := fmt.Sprintf("%d.%d.%d.%d", r.ipBase[0], r.ipBase[1], r.nextIP/250, r.nextIP%250+2)
	r.nextIP++
	rp := &runningPod{uid: p.UID, ns: p.Namespace, name: p.Name, ip: ip, done: make(chan struct{})}
	r.pods[p.UID] = rp
	r.mu.Unlock()
	go r.run(ctx, p.DeepCopy(), im, rp)
}

func (r *podRunner) podDir(p *corev1.Pod) string {
	return filepath.Join(r.dir, "pods", p.Namespace+"_"+p.Name)
}

func (r *podRunner) logf(rp *runningPod, format string, a ...any) {
	log.Printf("podrunner: %s/%s: %s", rp.ns, rp.name, fmt.Sprintf(format, a...))
}

// run prepares and supervises one pod until it is stopped.
func (r *podRunner) run(parent context.Context, p *corev1.Pod, im *servedImage, rp *runningPod) {
	defer close(rp.done)
	ctx, cancel := context.WithCancel(parent)
	r.mu.Lock()
	rp.cancel = cancel
	r.mu.Unlock()
	c := p.Spec.Containers[0]
	_, tag := splitImage(c.Image)
	if tag != im.version {
		r.logf(rp, "image %s asks for %q; running the built version %s", c.Image, tag, im.version)
	}
	pdir := r.podDir(p)
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		r.logf(rp, "%v", err)
		return
	}

	// Ports: every container port gets a private loopback port for the
	// process and a forwarder on podIP:containerPort.
	private := map[int]int{}
	for _, cp := range c.Ports {
		private[int(cp.ContainerPort)] = freePort()
	}
	args := append([]string{}, c.Command...)
	if len(args) > 0 {
		args = args[1:] // the image's entrypoint is the binary itself
	}
	args = append(args, c.Args...)
	rp.private = private
	for _, pf := range im.portFlags {
		port, idx := pf.def, -1
		for i, a := range args {
			if a == pf.flag && i+1 < len(args) {
				port, _ = strconv.Atoi(args[i+1])
				idx = i + 1
			} else if strings.HasPrefix(a, pf.flag+"=") {
				port, _ = strconv.Atoi(strings.TrimPrefix(a, pf.flag+"="))
				idx = i
				args[i] = pf.flag
				args = append(args[:i+1], append([]string{""}, args[i+1:]...)...)
				idx = i + 1
			}
		}
		pp, ok := private[port]
		if !ok {
			pp = freePort()
			private[port] = pp
		}
		if idx >= 0 {
			args[idx] = strconv.Itoa(pp)
		} else {
			args = append(args, pf.flag, strconv.Itoa(pp))
		}
	}

	// ConfigMap volumes as files; mount paths in args point at them.
	mounts := map[string]string{}
	for _, v := range p.Spec.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		cm, err := r.client.CoreV1().ConfigMaps(p.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
		if err != nil {
			r.logf(rp, "configmap %s: %v", v.ConfigMap.Name, err)
			r.setStatus(ctx, p, rp, false, "ConfigMap "+v.ConfigMap.Name+" not readable")
			return
		}
		vdir := filepath.Join(pdir, "volumes", v.Name)
		_ = os.MkdirAll(vdir, 0o755)
		for k, val := range cm.Data {
			_ = os.WriteFile(filepath.Join(vdir, k), []byte(val), 0o644)
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name {
				mounts[m.MountPath] = vdir
			}
		}
	}
	for i, a := range args {
		for mp, local := range mounts {
			if strings.Contains(a, mp) {
				args[i] = strings.ReplaceAll(a, mp, local)
			}
		}
	}

	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + pdir}
	for _, e := range c.Env {
		val := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				val = p.Name
			case "metadata.namespace":
				val = p.Namespace
			case "metadata.uid":
				val = string(p.UID)
			case "status.podIP":
				val = rp.ip
			case "spec.nodeName":
				val = p.Spec.NodeName
			case "spec.serviceAccountName":
				val = p.Spec.ServiceAccountName
			}
		}
		env = append(env, e.Name+"="+val)
	}
	kc, err := r.podKubeconfig(ctx, p, pdir)
	if err != nil {
		r.logf(rp, "identity: %v", err)
		r.setStatus(ctx, p, rp, false, "TokenRequest failed: "+err.Error())
		return
	}
	env = append(env, "KUBECONFIG="+kc)

	for cport, pport := range private {
		ln, err := net.Listen("tcp", net.JoinHostPort(rp.ip, strconv.Itoa(cport)))
		if err != nil {
			r.logf(rp, "listen %s:%d: %v (is %s a local address? run the cluster with --dataplane)", rp.ip, cport, err, rp.ip)
			r.setStatus(ctx, p, rp, false, "cannot listen on pod IP")
			return
		}
		rp.listeners = append(rp.listeners, ln)
		go forward(ln, "127.0.0.1:"+strconv.Itoa(pport))
	}
	defer func() {
		for _, ln := range rp.listeners {
			_ = ln.Close()
		}
	}()

	logPath := filepath.Join(r.dir, "pods", p.Namespace+"_"+p.Name+".log")
	r.setStatus(ctx, p, rp, false, "")
	probe := c.ReadinessProbe
	for ctx.Err() == nil {
		lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			r.logf(rp, "%v", err)
			return
		}
		cmd := exec.Command(im.binary, args...)
		cmd.Env = env
		cmd.Dir = pdir
		cmd.Stdout, cmd.Stderr = lf, lf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		fmt.Fprintf(lf, "== podrunner: %s %s (pod IP %s, ports %v)\n", im.binary, strings.Join(args, " "), rp.ip, private)
		if err := cmd.Start(); err != nil {
			r.logf(rp, "start: %v", err)
			_ = lf.Close()
			return
		}
		r.logf(rp, "started %s (pid %d) on %s", filepath.Base(im.binary), cmd.Process.Pid, rp.ip)
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		r.supervise(ctx, p, rp, probe, exited)
		if ctx.Err() != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
			_ = lf.Close()
			return
		}
		_ = lf.Close()
		rp.restarts++
		r.logf(rp, "process exited (%v); restarting (restart %d)", cmd.ProcessState, rp.restarts)
		r.setStatus(ctx, p, rp, false, "process exited")
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(min(int(rp.restarts), 10)) * time.Second):
		}
	}
}

// supervise probes readiness until the process exits or ctx ends, writing
// Ready on every change.
func (r *podRunner) supervise(ctx context.Context, p *corev1.Pod, rp *runningPod, probe *corev1.Probe, exited chan struct{}) {
	ready := false
	fails := 0
	period := time.Second
	threshold := 3
	if probe != nil && probe.FailureThreshold > 0 {
		threshold = int(probe.FailureThreshold)
	}
	for {
		ok := r.probe(rp, probe)
		switch {
		case ok && !ready:
			ready, fails = true, 0
			r.setStatus(ctx, p, rp, true, "")
			r.logf(rp, "ready")
		case !ok && ready:
			fails++
			if fails >= threshold {
				ready = false
				r.setStatus(ctx, p, rp, false, "readiness probe failed")
			}
		case ok:
			fails = 0
		}
		// Probe quickly until ready, then at the probe's period (capped).
		wait := 200 * time.Millisecond
		if ready {
			wait = period
			if probe != nil && probe.PeriodSeconds > 0 && probe.PeriodSeconds < 2 {
				wait = time.Duration(probe.PeriodSeconds) * time.Second
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-exited:
			return
		case <-time.After(wait):
		}
	}
}

func (r *podRunner) probe(rp *runningPod, probe *corev1.Probe) bool {
	if probe == nil {
		return true
	}
	timeout := 2 * time.Second
	switch {
	case probe.HTTPGet != nil:
		port := probe.HTTPGet.Port.IntValue()
		scheme := "http"
		if probe.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Get(fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(rp.ip, strconv.Itoa(port)), probe.HTTPGet.Path))
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode >= 200 && resp.StatusCode < 400
	case probe.TCPSocket != nil:
		// The forwarder accepts before the process listens: dial the process.
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(rp.private[probe.TCPSocket.Port.IntValue()]), timeout)
		if err != nil {
			return false
		}
		_ = conn.Close()
		return true
	case probe.GRPC != nil:
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(rp.private[int(probe.GRPC.Port)]), timeout)
		if err != nil {
			return false
		}
		_ = conn.Close()
		return true
	}
	return true
}

// setStatus writes the pod's status as a kubelet would: Running on the pod
// IP, Ready as given.
func (r *podRunner) setStatus(ctx context.Context, p *corev1.Pod, rp *runningPod, ready bool, msg string) {
	now := metav1.Now()
	cond := func(t corev1.PodConditionType, ok bool) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		c := corev1.PodCondition{Type: t, Status: s, LastTransitionTime: now}
		if !ok && msg != "" {
			c.Reason, c.Message = "ProcessNotReady", msg
		}
		return c
	}
	c := p.Spec.Containers[0]
	st := map[string]any{
		"phase":  "Running",
		"podIP":  rp.ip,
		"podIPs": []map[string]string{{"ip": rp.ip}},
		"hostIP": "10.0.0.10",
		"conditions": []corev1.PodCondition{cond(corev1.PodScheduled, true), cond(corev1.PodInitialized, true),
			cond(corev1.ContainersReady, ready), cond(corev1.PodReady, ready)},
		"containerStatuses": []map[string]any{{
			"name": c.Name, "image": c.Image, "imageID": "", "ready": ready, "restartCount": rp.restarts,
			"started": true, "state": map[string]any{"running": map[string]any{"startedAt": now}},
		}},
	}
	if p.Status.StartTime == nil {
		st["startTime"] = now
	}
	body, _ := json.Marshal(map[string]any{"status": st})
	for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
		_, err := r.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, body,
			metav1.PatchOptions{}, "status")
		if err == nil || apierrors.IsNotFound(err) {
			return
		}
		r.logf(rp, "status: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
}

// podKubeconfig writes a kubeconfig carrying a token for the pod's
// ServiceAccount, bound to the pod, so the process has exactly its RBAC.
func (r *podRunner) podKubeconfig(ctx context.Context, p *corev1.Pod, pdir string) (string, error) {
	sa := p.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	exp := int64(24 * 3600)
	tr, err := r.client.CoreV1().ServiceAccounts(p.Namespace).CreateToken(ctx, sa, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp, BoundObjectRef: &authv1.BoundObjectReference{
			Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID}},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("serviceaccount %s/%s: %w", p.Namespace, sa, err)
	}
	ca := r.restCfg.CAData
	if len(ca) == 0 && r.restCfg.CAFile != "" {
		ca, _ = os.ReadFile(r.restCfg.CAFile)
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: pod
  context: {cluster: local, user: %s, namespace: %s}
current-context: pod
`, r.restCfg.Host, base64.StdEncoding.EncodeToString(ca), sa, tr.Status.Token, sa, p.Namespace)
	path := filepath.Join(pdir, "kubeconfig")
	return path, os.WriteFile(path, []byte(kc), 0o600)
}

func (r *podRunner) stopPod(uid types.UID, why string) {
	r.mu.Lock()
	rp, ok := r.pods[uid]
	if ok {
		delete(r.pods, uid)
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	r.logf(rp, "stopping (%s)", why)
	if rp.cancel != nil {
		rp.cancel()
	}
	<-rp.done
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// forward copies every connection accepted on ln to target, both ways.
func forward(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer func() { _ = c.Close() }()
			u, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				return
			}
			defer func() { _ = u.Close() }()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(u, c); closeWrite(u); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, u); closeWrite(c); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

func closeWrite(c net.Conn) {
	if t, ok := c.(*net.TCPConn); ok {
		_ = t.CloseWrite()
	}
}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
