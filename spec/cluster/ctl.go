package main

import (
	"context"
	"crypto/subtle"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The control endpoint: plain HTTP on 127.0.0.1, address in DIR/ctl.addr,
// bearer token in DIR/ctl.token (mode 0600). Operations are serialized.

func (l *launcher) startControlServer() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	token := randomToken()
	if err := os.WriteFile(l.path("ctl.token"), []byte(token), 0o600); err != nil {
		return err
	}
	mux := http.NewServeMux()
	handle := func(path string, fn func(ctx context.Context, q url.Values) (string, error)) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				writeJSONish(w, http.StatusUnauthorized, "unauthorized")
				return
			}
			if r.Method != http.MethodPost && path != "/status" {
				writeJSONish(w, http.StatusMethodNotAllowed, "POST only")
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), 4*time.Minute)
			defer cancel()
			start := time.Now()
			msg, err := fn(ctx, r.URL.Query())
			if err != nil {
				l.logf("ctl %s failed: %v", path, err)
				writeJSONish(w, http.StatusInternalServerError, "error: "+err.Error())
				return
			}
			l.logf("ctl %s ok (%.1fs) %s", path, time.Since(start).Seconds(), msg)
			writeJSONish(w, http.StatusOK, msg)
		})
	}
	locked := func(fn func(ctx context.Context, q url.Values) (string, error)) func(ctx context.Context, q url.Values) (string, error) {
		return func(ctx context.Context, q url.Values) (string, error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.stopping.Load() {
				return "", fmt.Errorf("stopping")
			}
			return fn(ctx, q)
		}
	}
	handle("/status", func(ctx context.Context, q url.Values) (string, error) {
		var b strings.Builder
		fmt.Fprintf(&b, "apiserver=%s dir=%s ready=%v\n", l.apiURL, l.dir, l.ready.Load())
		for name, p := range l.procsSnapshot() {
			state := "running"
			select {
			case <-p.exited:
				state = "exited"
			default:
			}
			fmt.Fprintf(&b, "%s pid=%d %s\n", name, p.cmd.Process.Pid, state)
		}
		return b.String(), nil
	})
	handle("/restart-apiserver", locked(func(ctx context.Context, q url.Values) (string, error) {
		start := time.Now()
		err := l.restartAPIServer(ctx, q.Get("hard") == "true")
		return fmt.Sprintf("apiserver restarted in %.1fs", time.Since(start).Seconds()), err
	}))
	handle("/restart-control-plane", locked(func(ctx context.Context, q url.Values) (string, error) {
		start := time.Now()
		err := l.restartControlPlane(ctx)
		return fmt.Sprintf("control plane restarted in %.1fs", time.Since(start).Seconds()), err
	}))
	handle("/compact", locked(func(ctx context.Context, q url.Values) (string, error) {
		rev, err := l.compact(ctx, q.Get("no-restart") == "true")
		return fmt.Sprintf("compacted at revision %d", rev), err
	}))
	handle("/install-crds", locked(func(ctx context.Context, q url.Values) (string, error) {
		sets, err := parseCRDList(q.Get("list"))
		if err != nil {
			return "", err
		}
		if len(sets) == 0 {
			return "nothing to install", nil
		}
		return "installed " + strings.Join(sets, ","), l.installCRDs(ctx, sets)
	}))
	handle("/stop", func(ctx context.Context, q url.Values) (string, error) {
		go func() {
			time.Sleep(100 * time.Millisecond)
			l.requestStop()
		}()
		return "stopping", nil
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return os.WriteFile(l.path("ctl.addr"), []byte(ln.Addr().String()), 0o600)
}

func runCtl(args []string) int {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	dir := fs.String("dir", os.Getenv("SCHEDSIM_CLUSTER_DIR"), "state dir of the running cluster")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	if *dir == "" || len(rest) == 0 {
		fmt.Fprintln(os.Stderr, "usage: schedsim-cluster ctl [--dir DIR] status|restart-apiserver [--hard]|restart-control-plane|compact [--no-restart]|install-crds LIST|stop")
		return 2
	}
	op, opArgs := rest[0], rest[1:]
	q := url.Values{}
	switch op {
	case "status", "restart-control-plane", "stop":
	case "restart-apiserver":
		for _, a := range opArgs {
			if a != "--hard" {
				fmt.Fprintf(os.Stderr, "schedsim-cluster ctl: unknown argument %q\n", a)
				return 2
			}
			q.Set("hard", "true")
		}
	case "compact":
		for _, a := range opArgs {
			if a != "--no-restart" {
				fmt.Fprintf(os.Stderr, "schedsim-cluster ctl: unknown argument %q\n", a)
				return 2
			}
			q.Set("no-restart", "true")
		}
	case "install-crds":
		if len(opArgs) != 1 {
			fmt.Fprintln(os.Stderr, "usage: schedsim-cluster ctl install-crds LIST")
			return 2
		}
		if _, err := parseCRDList(opArgs[0]); err != nil {
			fmt.Fprintln(os.Stderr, "schedsim-cluster ctl:", err)
			return 2
		}
		q.Set("list", opArgs[0])
	default:
		fmt.Fprintf(os.Stderr, "schedsim-cluster ctl: unknown command %q\n", op)
		return 2
	}
	addr, err := os.ReadFile(filepath.Join(*dir, "ctl.addr"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "schedsim-cluster ctl: no running cluster in", *dir)
		return 1
	}
	token, err := os.ReadFile(filepath.Join(*dir, "ctl.token"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "schedsim-cluster ctl:", err)
		return 1
	}
	method := http.MethodPost
	if op == "status" {
		method = http.MethodGet
	}
	req, _ := http.NewRequest(method, "http://"+string(addr)+"/"+op+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+string(token))
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "schedsim-cluster ctl:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		fmt.Fprint(os.Stderr, "schedsim-cluster ctl: "+string(body))
		return 1
	}
	fmt.Print(string(body))
	if op == "stop" {
		// Wait until the launcher is gone (it removes its dir).
		for i := 0; i < 600; i++ {
			if _, err := os.Stat(filepath.Join(*dir, "ctl.addr")); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return 0
}
