package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	etcdserverpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/embed"
	"golang.org/x/sys/unix"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodeheartbeat "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

const (
	serviceIP    = "10.96.0.1"
	serviceCIDR  = "10.96.0.0/16"
	fakeNodeName = "kwok-node-0"
	dirPrefix    = "schedsim-cluster."
	saIssuer     = "https://kubernetes.default.svc.cluster.local"
)

type user struct {
	name, token string
	groups      []string
}

type proc struct {
	name        string
	args        []string
	cmd         *exec.Cmd
	exited      chan struct{}
	intentional atomic.Bool
}

type launcher struct {
	dir, self, logsDir string
	crdsDir            string
	crds               []string
	watchCache         bool
	readyTimeout       time.Duration
	keepDir            bool
	serveImages        string // regexp: pods with such an image are the pod runner's, not kwok's to ready

	pki   *pki
	users map[string]*user

	etcd     *embed.Etcd
	etcdURL  string
	apiPort  int
	apiURL   string
	kwokPort int
	lockFile *os.File

	kube     *kubernetes.Clientset
	adminCfg *rest.Config

	mu       sync.Mutex // serializes control operations and process table changes
	procs    map[string]*proc
	ready    atomic.Bool
	stopping atomic.Bool
	stopCh   chan struct{}
	stopOnce sync.Once
	logMu    sync.Mutex
	logOut   io.Writer // launcher.log (and stderr with -v)
	verbose  bool
}

func (l *launcher) logf(format string, a ...any) {
	l.logMu.Lock()
	defer l.logMu.Unlock()
	fmt.Fprintf(l.logOut, "%s schedsim-cluster: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

// warnf logs to launcher.log and always to stderr.
func (l *launcher) warnf(format string, a ...any) {
	l.logf(format, a...)
	if !l.verbose && l.logOut != io.Writer(os.Stderr) {
		fmt.Fprintf(os.Stderr, "schedsim-cluster: %s\n", fmt.Sprintf(format, a...))
	}
}

func (l *launcher) requestStop() { l.stopOnce.Do(func() { close(l.stopCh) }) }

func runUp(args []string) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	dir := fs.String("dir", "", "state dir (default: a new ${TMPDIR:-/tmp}/schedsim-cluster.XXXXXX)")
	crds := fs.String("crds", "none", "third-party CRDs to install: comma list of "+strings.Join(crdSetNames(), ",")+", or all, or none")
	crdsDir := fs.String("crds-dir", os.Getenv("SCHEDSIM_THIRDPARTY_CRDS"), "directory the CRD sets are read from: the Go module cache, as printed by spec/cluster/thirdparty")
	watchCache := fs.Bool("watch-cache", true, "run the apiserver with its watch cache")
	defTimeout := 600 * time.Second
	if v, err := time.ParseDuration(os.Getenv("SCHEDSIM_CLUSTER_READY_TIMEOUT")); err == nil {
		defTimeout = v
	}
	readyTimeout := fs.Duration("ready-timeout", defTimeout, "give up if not ready after this long (env SCHEDSIM_CLUSTER_READY_TIMEOUT)")
	keepDir := fs.Bool("keep-dir", false, "do not remove the state dir on exit (debugging)")
	dieWithParent := fs.Bool("die-with-parent", true, "stop when the parent process dies")
	verbose := fs.Bool("v", false, "also log progress to stderr (always in DIR/logs/launcher.log)")
	serveImages := fs.String("serve-images", os.Getenv("SCHEDSIM_SERVE_IMAGES"),
		"regexp (jq test) of images whose pods kwok does not ready: the data plane's pod runner runs them (env SCHEDSIM_SERVE_IMAGES)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	crdList, err := parseCRDList(*crds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "schedsim-cluster:", err)
		return 2
	}
	if len(crdList) > 0 && *crdsDir == "" {
		fmt.Fprintln(os.Stderr, "schedsim-cluster: --crds needs --crds-dir or SCHEDSIM_THIRDPARTY_CRDS")
		return 2
	}
	if *dieWithParent {
		ppid := os.Getppid()
		_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0)
		if os.Getppid() != ppid {
			return 1
		}
	}

	self, err := os.Executable()
	if err != nil {
		fatalf("cannot find own executable: %v", err)
	}
	l := &launcher{
		self: self, crdsDir: *crdsDir, crds: crdList, watchCache: *watchCache,
		readyTimeout: *readyTimeout, keepDir: *keepDir, serveImages: *serveImages,
		procs: map[string]*proc{}, stopCh: make(chan struct{}), logOut: os.Stderr, verbose: *verbose,
	}

	sigCh := make(chan os.Signal, 2)
	signal.Notify(sigCh, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		s := <-sigCh
		l.logf("got %v, stopping", s)
		signal.Stop(sigCh)
		l.requestStop()
	}()

	base := os.Getenv("TMPDIR")
	if base == "" {
		base = "/tmp"
	}
	cleanStale(base, l.logf)
	if err := l.prepareDir(*dir, base); err != nil {
		fmt.Fprintln(os.Stderr, "schedsim-cluster:", err)
		return 1
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), l.readyTimeout)
	go func() {
		select {
		case <-l.stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	err = l.start(ctx)
	cancel()
	if err != nil {
		select {
		case <-l.stopCh: // interrupted while starting
			l.logf("start interrupted: %v", err)
		default:
			l.warnf("start failed: %v", err)
			l.dumpLogs()
		}
		l.shutdown()
		return 1
	}
	l.ready.Store(true)
	fmt.Printf("schedsim-cluster ready: apiserver=%s dir=%s kubeconfig=%s operator-kubeconfig=%s took=%.1fs\n",
		l.apiURL, l.dir, l.path("admin.kubeconfig"), l.path("operator.kubeconfig"), time.Since(start).Seconds())
	_ = os.WriteFile(l.path("ready"), []byte(time.Now().Format(time.RFC3339)+"\n"), 0o644)

	<-l.stopCh
	l.shutdown()
	return 0
}

func (l *launcher) path(elem ...string) string {
	return filepath.Join(append([]string{l.dir}, elem...)...)
}

// prepareDir creates (or takes over) the state dir and locks it for the
// lifetime of this process. The flock is what tells a later run whether the
// dir is stale.
func (l *launcher) prepareDir(dir, base string) error {
	if dir == "" {
		d, err := os.MkdirTemp(base, dirPrefix)
		if err != nil {
			return err
		}
		dir = d
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	l.dir = abs
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return err
	}
	lf, err := os.OpenFile(l.path("lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		return fmt.Errorf("state dir %s is in use by a running instance", l.dir)
	}
	l.lockFile = lf
	// A previous, killed run may have left things here: kill what it left
	// running and start from an empty dir.
	killRecorded(l.dir, l.logf)
	entries, _ := os.ReadDir(l.dir)
	for _, e := range entries {
		if e.Name() != "lock" {
			_ = os.RemoveAll(l.path(e.Name()))
		}
	}
	_ = lf.Truncate(0)
	_, _ = lf.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	l.logsDir = l.path("logs")
	if err := os.MkdirAll(l.logsDir, 0o700); err != nil {
		return err
	}
	if f, err := os.OpenFile(filepath.Join(l.logsDir, "launcher.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		l.logOut = f
		if l.verbose {
			l.logOut = io.MultiWriter(os.Stderr, f)
		}
	}
	return nil
}

// cleanStale removes state dirs of earlier runs whose launcher is gone (its
// flock is free), after killing any process they recorded.
func cleanStale(base string, logf func(string, ...any)) {
	matches, _ := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
	for _, d := range matches {
		st, err := os.Stat(d)
		if err != nil || !st.IsDir() {
			continue
		}
		lf, err := os.OpenFile(filepath.Join(d, "lock"), os.O_RDWR, 0)
		if err != nil {
			// No lock yet: either being created right now by another run, or
			// left by a run killed before it locked. Only the latter is old.
			if time.Since(st.ModTime()) > 10*time.Minute {
				logf("removing stale state dir %s (never locked)", d)
				_ = os.RemoveAll(d)
			}
			continue
		}
		if unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			lf.Close() // live instance
			continue
		}
		logf("removing stale state dir %s", d)
		killRecorded(d, logf)
		_ = os.RemoveAll(d)
		lf.Close()
	}
}

// killRecorded kills the component processes a launcher recorded in
// DIR/pids, if they are still alive and still refer to DIR.
func killRecorded(dir string, logf func(string, ...any)) {
	b, err := os.ReadFile(filepath.Join(dir, "pids"))
	if err != nil {
		return
	}
	for _, line := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(line)
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmdline), dir) {
			continue
		}
		logf("killing leftover process %d of %s", pid, dir)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (l *launcher) start(ctx context.Context) error {
	var err error
	if l.pki, err = writePKI(l.path("pki")); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	l.users = map[string]*user{
		"admin":     {name: "admin", token: randomToken(), groups: []string{"system:masters"}},
		"operator":  {name: "operator", token: randomToken()},
		"kcm":       {name: "system:kube-controller-manager", token: randomToken(), groups: []string{"system:masters"}},
		"scheduler": {name: "system:kube-scheduler", token: randomToken(), groups: []string{"system:masters"}},
		"kwok":      {name: "system:kwok-controller", token: randomToken(), groups: []string{"system:masters"}},
	}
	var csv strings.Builder
	for _, k := range []string{"admin", "operator", "kcm", "scheduler", "kwok"} {
		u := l.users[k]
		fmt.Fprintf(&csv, "%s,%s,%s", u.token, u.name, u.name)
		if len(u.groups) > 0 {
			fmt.Fprintf(&csv, ",\"%s\"", strings.Join(u.groups, ","))
		}
		csv.WriteString("\n")
	}
	if err := os.WriteFile(l.path("tokens.csv"), []byte(csv.String()), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(l.path("audit-policy.yaml"), []byte(auditPolicy), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(l.path("kwok.yaml"), []byte(kwokStages(l.serveImages)), 0o600); err != nil {
		return err
	}

	if err := l.startEtcd(); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}

	// The apiserver's port is fixed for the life of the cluster (restarts
	// reuse it). If another process grabs it between our probe and the
	// apiserver's bind, try another one.
	for attempt := 1; ; attempt++ {
		if l.apiPort, err = freePort(); err != nil {
			return err
		}
		l.apiURL = fmt.Sprintf("https://127.0.0.1:%d", l.apiPort)
		if err := l.writeKubeconfigs(); err != nil {
			return err
		}
		err = l.startAPIServer(ctx)
		if err == nil {
			break
		}
		if attempt >= 3 || ctx.Err() != nil {
			return fmt.Errorf("kube-apiserver: %w", err)
		}
		l.logf("kube-apiserver did not start (%v); retrying on another port", err)
	}
	if l.kwokPort, err = freePort(); err != nil {
		return err
	}
	if err := l.startOthers(); err != nil {
		return err
	}
	if err := l.writeEnv(); err != nil {
		return err
	}
	if err := l.startControlServer(); err != nil {
		return err
	}
	if err := l.ensureNode(ctx); err != nil {
		return err
	}
	if err := l.waitClusterReady(ctx); err != nil {
		return err
	}
	if len(l.crds) > 0 {
		if err := l.installCRDs(ctx, l.crds); err != nil {
			return err
		}
	}
	return nil
}

func (l *launcher) startEtcd() error {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		cp, err := freePort()
		if err != nil {
			return err
		}
		pp, err := freePort()
		if err != nil {
			return err
		}
		cfg := embed.NewConfig()
		cfg.Name = "default"
		cfg.Dir = l.path("etcd")
		cu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", cp)}
		pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", pp)}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		cfg.UnsafeNoFsync = true
		cfg.Logger = "zap"
		cfg.LogLevel = "error"
		cfg.LogOutputs = []string{filepath.Join(l.logsDir, "etcd.log")}
		cfg.WatchProgressNotifyInterval = 5 * time.Second
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			lastErr = err
			_ = os.RemoveAll(cfg.Dir)
			continue
		}
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			e.Close()
			lastErr = err
			continue
		case <-time.After(60 * time.Second):
			e.Close()
			return errors.New("etcd did not become ready in 60s")
		}
		l.etcd = e
		l.etcdURL = cu.String()
		l.logf("etcd ready on %s", l.etcdURL)
		return nil
	}
	return lastErr
}

func (l *launcher) apiserverArgs() []string {
	return []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(l.apiPort),
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + l.path("pki"),
		"--tls-cert-file=" + l.pki.ServingCert,
		"--tls-private-key-file=" + l.pki.ServingKey,
		"--client-ca-file=" + l.pki.CACert,
		"--token-auth-file=" + l.path("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=" + saIssuer,
		"--service-account-key-file=" + l.pki.SAPub,
		"--service-account-signing-key-file=" + l.pki.SAKey,
		"--service-cluster-ip-range=" + serviceCIDR,
		"--etcd-servers=" + l.etcdURL,
		"--enable-priority-and-fairness=false",
		"--allow-privileged=true",
		"--profiling=false",
		// Close watches on SIGTERM instead of waiting for them (restarts).
		"--shutdown-watch-termination-grace-period=2s",
		"--watch-cache=" + strconv.FormatBool(l.watchCache),
		"--audit-policy-file=" + l.path("audit-policy.yaml"),
		"--audit-log-path=" + l.path("audit.log"),
		"--audit-log-format=json",
		"--audit-log-mode=blocking",
		"--audit-log-maxbackup=1",
		"--audit-log-maxsize=200",
	}
}

func (l *launcher) startAPIServer(ctx context.Context) error {
	p, err := l.spawn("apiserver", l.apiserverArgs())
	if err != nil {
		return err
	}
	return l.waitAPIReady(ctx, p)
}

func (l *launcher) startOthers() error {
	comps := []struct {
		name string
		args []string
	}{
		{"controller-manager", []string{
			"--kubeconfig=" + l.path("kcm.kubeconfig"),
			"--leader-elect=false",
			"--secure-port=0",
			"--controllers=*",
			"--root-ca-file=" + l.pki.CACert,
			"--service-account-private-key-file=" + l.pki.SAKey,
			"--use-service-account-credentials=false",
			"--cluster-name=schedsim",
			"--kube-api-qps=100",
			"--kube-api-burst=200",
			"--profiling=false",
		}},
		{"scheduler", []string{
			"--kubeconfig=" + l.path("scheduler.kubeconfig"),
			"--leader-elect=false",
			"--secure-port=0",
		}},
		{"kwok", []string{
			"--kubeconfig=" + l.path("kwok.kubeconfig"),
			"--config=" + l.path("kwok.yaml"),
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
			"--node-port=" + strconv.Itoa(l.kwokPort),
			"--server-address=127.0.0.1:" + strconv.Itoa(l.kwokPort),
			"--node-lease-duration-seconds=40",
			"--node-ip=10.0.0.10",
			"--cidr=10.244.0.1/16",
		}},
	}
	for _, c := range comps {
		if _, err := l.spawn(c.name, c.args); err != nil {
			return err
		}
	}
	return nil
}

// spawn starts "self NAME ARGS..." with its output in logs/NAME.log.
func (l *launcher) spawn(name string, args []string) (*proc, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spawnLocked(name, args)
}

func (l *launcher) spawnLocked(name string, args []string) (*proc, error) {
	logf, err := os.OpenFile(filepath.Join(l.logsDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "==== %s start %s\n", time.Now().Format(time.RFC3339), name)
	cmd := exec.Command(l.self, append([]string{name}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = l.dir
	// Own process group (a terminal's ^C reaches only the launcher, which
	// then stops the components in order); killed if the launcher dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &proc{name: name, args: args, cmd: cmd, exited: make(chan struct{})}
	l.procs[name] = p
	l.writePidsLocked()
	go func() {
		err := cmd.Wait()
		logf.Close()
		close(p.exited)
		if p.intentional.Load() || l.stopping.Load() {
			return
		}
		l.warnf("%s exited unexpectedly (%v); see %s", name, err, filepath.Join(l.logsDir, name+".log"))
		if l.ready.Load() {
			go l.respawn(p)
		}
	}()
	return p, nil
}

// respawn restarts a component that died on its own after the cluster was ready.
func (l *launcher) respawn(old *proc) {
	time.Sleep(2 * time.Second)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping.Load() || l.procs[old.name] != old {
		return
	}
	l.logf("restarting %s", old.name)
	if _, err := l.spawnLocked(old.name, old.args); err != nil {
		l.logf("cannot restart %s: %v", old.name, err)
	}
}

func (l *launcher) writePidsLocked() {
	var b strings.Builder
	for _, p := range l.procs {
		fmt.Fprintf(&b, "%d\n", p.cmd.Process.Pid)
	}
	_ = os.WriteFile(l.path("pids"), []byte(b.String()), 0o600)
}

// stopProc stops one component: sig, then SIGKILL after the grace period.
func (l *launcher) stopProc(p *proc, sig syscall.Signal, grace time.Duration) {
	if p == nil {
		return
	}
	p.intentional.Store(true)
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(grace):
		l.logf("%s did not stop in %v; killing it", p.name, grace)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (l *launcher) restConfig(u *user) *rest.Config {
	return &rest.Config{
		Host:            l.apiURL,
		BearerToken:     u.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: l.pki.CAData},
		QPS:             50,
		Burst:           100,
		Timeout:         30 * time.Second,
	}
}

func (l *launcher) waitAPIReady(ctx context.Context, p *proc) error {
	cfg := l.restConfig(l.users["admin"])
	cfg.Timeout = 5 * time.Second
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var last string
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("exited during start (%s)", tailFile(filepath.Join(l.logsDir, p.name+".log"), 6))
		case <-ctx.Done():
			return fmt.Errorf("not ready: %v (last /readyz: %s)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
		body, err := kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil {
			break
		}
		last = strings.TrimSpace(string(body))
		if last == "" {
			last = err.Error()
		}
	}
	l.adminCfg = l.restConfig(l.users["admin"])
	l.kube, err = kubernetes.NewForConfig(l.adminCfg)
	return err
}

func (l *launcher) ensureNode(ctx context.Context) error {
	q := func(s string) resource.Quantity { return resource.MustParse(s) }
	res := corev1.ResourceList{corev1.ResourceCPU: q("32"), corev1.ResourceMemory: q("256Gi"), corev1.ResourcePods: q("110")}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: fakeNodeName,
			Annotations: map[string]string{
				"kwok.x-k8s.io/node":           "fake",
				"node.alpha.kubernetes.io/ttl": "0",
			},
			Labels: map[string]string{
				"kubernetes.io/arch":     "amd64",
				"kubernetes.io/os":       "linux",
				"kubernetes.io/hostname": fakeNodeName,
				"type":                   "kwok",
			},
		},
		Status: corev1.NodeStatus{Allocatable: res, Capacity: res},
	}
	_, err := l.kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create node: %w", err)
	}
	return nil
}

// waitClusterReady waits until pods can be created and scheduled: the fake
// node is Ready without taints and the default ServiceAccount exists.
func (l *launcher) waitClusterReady(ctx context.Context) error {
	var why string
	for {
		why = ""
		n, err := l.kube.CoreV1().Nodes().Get(ctx, fakeNodeName, metav1.GetOptions{})
		switch {
		case err != nil:
			why = "node: " + err.Error()
		case !nodeReady(n):
			why = "node not Ready yet"
		case len(n.Spec.Taints) > 0:
			why = fmt.Sprintf("node still tainted %v", n.Spec.Taints)
		}
		if why == "" {
			if _, err := l.kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
				why = "default ServiceAccount: " + err.Error()
			}
		}
		if why == "" {
			return nil
		}
		for name, p := range l.procsSnapshot() {
			select {
			case <-p.exited:
				return fmt.Errorf("%s exited during start (%s)", name, tailFile(filepath.Join(l.logsDir, name+".log"), 6))
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ready: %v (%s)", ctx.Err(), why)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (l *launcher) procsSnapshot() map[string]*proc {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]*proc, len(l.procs))
	for k, v := range l.procs {
		m[k] = v
	}
	return m
}

// restartAPIServer stops the apiserver (SIGTERM, or SIGKILL when hard) and
// starts it again on the same port, certificates and etcd. Caller holds l.mu.
func (l *launcher) restartAPIServer(ctx context.Context, hard bool) error {
	sig := syscall.SIGTERM
	if hard {
		sig = syscall.SIGKILL
	}
	l.stopProc(l.procs["apiserver"], sig, 10*time.Second)
	var p *proc
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if p, err = l.spawnLocked("apiserver", l.apiserverArgs()); err != nil {
			return err
		}
		if err = l.waitAPIReady(ctx, p); err == nil {
			return nil
		}
		// Most likely the port is still held by the dying process's sockets.
		l.logf("apiserver restart attempt failed: %v", err)
		l.stopProc(p, syscall.SIGKILL, 5*time.Second)
		time.Sleep(500 * time.Millisecond)
	}
	return err
}

// restartControlPlane restarts every component but etcd. Caller holds l.mu.
func (l *launcher) restartControlPlane(ctx context.Context) error {
	for _, n := range []string{"kwok", "scheduler", "controller-manager"} {
		l.stopProc(l.procs[n], syscall.SIGTERM, 15*time.Second)
	}
	if err := l.restartAPIServer(ctx, false); err != nil {
		return err
	}
	l.mu.Unlock()
	err := l.startOthers()
	l.mu.Lock()
	if err != nil {
		return err
	}
	return l.waitClusterReady(ctx)
}

// compact makes every watch the clients hold invalid: it bumps the etcd
// revision, compacts etcd at that revision (so neither etcd nor a new watch
// cache can serve older resourceVersions) and, unless noRestart, restarts
// the apiserver so that all current watches are cut and resumed with their
// old resourceVersion, which now gets 410 Gone. Caller holds l.mu.
func (l *launcher) compact(ctx context.Context, noRestart bool) (int64, error) {
	put, err := l.etcd.Server.Put(ctx, &etcdserverpb.PutRequest{
		Key: []byte("/schedsim-cluster/compact-bump"), Value: []byte(time.Now().String())})
	if err != nil {
		return 0, err
	}
	rev := put.Header.Revision
	if _, err := l.etcd.Server.Compact(ctx, &etcdserverpb.CompactionRequest{Revision: rev, Physical: true}); err != nil {
		return 0, err
	}
	l.logf("etcd compacted at revision %d", rev)
	if noRestart {
		return rev, nil
	}
	return rev, l.restartAPIServer(ctx, false)
}

func (l *launcher) shutdown() {
	l.stopping.Store(true)
	l.requestStop()
	procs := l.procsSnapshot()
	var wg sync.WaitGroup
	for _, n := range []string{"kwok", "scheduler", "controller-manager"} {
		if p := procs[n]; p != nil {
			wg.Add(1)
			go func() { defer wg.Done(); l.stopProc(p, syscall.SIGTERM, 10*time.Second) }()
		}
	}
	wg.Wait()
	l.stopProc(procs["apiserver"], syscall.SIGTERM, 15*time.Second)
	if l.etcd != nil {
		l.etcd.Close()
	}
	if dest := os.Getenv("SCHEDSIM_CLUSTER_LOGS_TO"); dest != "" && l.logsDir != "" {
		if err := copyDir(l.logsDir, dest); err != nil {
			l.logf("copying logs to %s: %v", dest, err)
		}
	}
	if l.dir != "" && !l.keepDir {
		_ = os.RemoveAll(l.dir)
	}
	if l.lockFile != nil {
		l.lockFile.Close()
	}
	l.logf("stopped")
}

func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// dumpLogs prints the end of every component log (used when start fails).
func (l *launcher) dumpLogs() {
	if l.logsDir == "" {
		return
	}
	entries, _ := os.ReadDir(l.logsDir)
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		if n == "launcher.log" {
			continue
		}
		fmt.Fprintf(os.Stderr, "---- last lines of %s\n%s\n", n, tailFile(filepath.Join(l.logsDir, n), 15))
	}
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (l *launcher) writeKubeconfigs() error {
	for key, file := range map[string]string{
		"admin": "admin.kubeconfig", "operator": "operator.kubeconfig", "kcm": "kcm.kubeconfig",
		"scheduler": "scheduler.kubeconfig", "kwok": "kwok.kubeconfig",
	} {
		u := l.users[key]
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["schedsim"] = &clientcmdapi.Cluster{Server: l.apiURL, CertificateAuthorityData: l.pki.CAData}
		cfg.AuthInfos[u.name] = &clientcmdapi.AuthInfo{Token: u.token}
		cfg.Contexts["schedsim"] = &clientcmdapi.Context{Cluster: "schedsim", AuthInfo: u.name, Namespace: "default"}
		cfg.CurrentContext = "schedsim"
		if err := clientcmd.WriteToFile(*cfg, l.path(file)); err != nil {
			return err
		}
	}
	return nil
}

// writeEnv writes DIR/env, sourced by spec/cluster/run.
func (l *launcher) writeEnv() error {
	vars := [][2]string{
		{"KUBECONFIG", l.path("admin.kubeconfig")},
		{"SCHEDSIM_OPERATOR_KUBECONFIG", l.path("operator.kubeconfig")},
		{"SCHEDSIM_CLUSTER_DIR", l.dir},
		{"SCHEDSIM_APISERVER_URL", l.apiURL},
		{"SCHEDSIM_CLUSTER_PID", strconv.Itoa(os.Getpid())},
		{"SCHEDSIM_ETCD_URL", l.etcdURL},
	}
	var b strings.Builder
	for _, v := range vars {
		fmt.Fprintf(&b, "export %s='%s'\n", v[0], v[1])
	}
	return os.WriteFile(l.path("env"), []byte(b.String()), 0o600)
}

// The audit policy: one JSON line per request (at ResponseComplete, or
// Panic), Metadata level: user, verb, URI, objectRef, responseStatus.code.
// Health probes of users other than "operator" are left out.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: ["operator"]
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
- level: Metadata
`

// kwokStages is kwok's fast node and pod stages; with serveImages (a regexp)
// the pod-ready stage skips pods whose first container's image matches it:
// the data plane's pod runner gives those an IP and readies them once their
// process answers (spec/cluster/dataplane/podrunner.go).
func kwokStages(serveImages string) string {
	podReady := podfast.DefaultPodReady
	if serveImages != "" {
		q, _ := json.Marshal(serveImages)
		expr := "    - key: '.spec.containers[0].image | test(" + strings.ReplaceAll(string(q), "'", "''") + ")'\n" +
			"      operator: 'NotIn'\n      values:\n      - 'true'\n"
		podReady = strings.Replace(podReady, "    matchExpressions:\n", "    matchExpressions:\n"+expr, 1)
	}
	return strings.Join([]string{
		nodefast.DefaultNodeInit,
		nodeheartbeat.DefaultNodeHeartbeatWithLease,
		podReady,
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}, "\n---\n")
}

// helper for the control server
func writeJSONish(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, strings.TrimRight(msg, "\n")+"\n")
}
