// Command schedsim-cluster is a local Kubernetes control plane for the
// schedsim-operator specs, demo and benchmarks.
//
// It is one multi-call binary. The launcher ("up") runs embedded etcd
// in-process and re-executes itself for every other component, each in its
// own child process so that each one keeps its own global state (feature
// gates, klog flags, metrics registries) and can be restarted on its own:
//
//	schedsim-cluster up [flags]             launcher: etcd + supervisor + control endpoint
//	schedsim-cluster apiserver FLAGS...     k8s.io/kubernetes/cmd/kube-apiserver
//	schedsim-cluster controller-manager ... k8s.io/kubernetes/cmd/kube-controller-manager
//	schedsim-cluster scheduler FLAGS...     k8s.io/kubernetes/cmd/kube-scheduler
//	schedsim-cluster kwok FLAGS...          sigs.k8s.io/kwok/cmd/kwok
//	schedsim-cluster kubectl ARGS...        k8s.io/kubectl (also when invoked as "kubectl")
//	schedsim-cluster ctl --dir DIR CMD...   talk to a running launcher
//	schedsim-cluster version
//
// See spec/cluster/README.md.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/component-base/version"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage: schedsim-cluster COMMAND [ARGS...]

commands:
  up [--dir DIR] [--crds LIST] [--crds-dir DIR] [--watch-cache=false] [--ready-timeout 600s]
      start the control plane, print one ready line, run until SIGTERM/SIGINT or "ctl stop"
  ctl [--dir DIR] (status|restart-apiserver [--hard]|restart-control-plane|compact [--no-restart]|install-crds LIST|stop)
  apiserver|controller-manager|scheduler|kwok|kubectl ARGS...   run one component (used by "up")
  version
`)
}

func main() {
	name := filepath.Base(os.Args[0])
	if name == "kubectl" {
		os.Exit(runKubectl(os.Args[1:]))
	}
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	// Components parse os.Args themselves (cobra, kwok's pflag sets): make
	// them see "<component> ARGS...".
	os.Args = append([]string{cmd}, args...)
	switch cmd {
	case "up":
		os.Exit(runUp(args))
	case "ctl":
		os.Exit(runCtl(args))
	case "apiserver", "kube-apiserver":
		os.Exit(runAPIServer(args))
	case "controller-manager", "kube-controller-manager":
		os.Exit(runControllerManager(args))
	case "scheduler", "kube-scheduler":
		os.Exit(runScheduler(args))
	case "kwok":
		os.Exit(runKwok(args))
	case "kubectl":
		os.Exit(runKubectl(args))
	case "version", "--version":
		fmt.Println(version.Get().GitVersion)
	case "help", "-h", "--help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "schedsim-cluster: unknown command %q\n", cmd)
		usage()
		os.Exit(2)
	}
}

func fatalf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	fmt.Fprint(os.Stderr, "schedsim-cluster: "+msg)
	os.Exit(1)
}
