// Command schedsim-dataplane is the local data plane of the schedsim local
// control plane: it owns the two long-running helpers that make real requests
// flow through what the operator deploys.
//
//	schedsim-dataplane podrunner FLAGS   run served pods (simulator, EPP) as local processes
//	schedsim-dataplane gateway FLAGS     a small Gateway API implementation with an ext_proc client
//
// Both talk to the API server with the admin kubeconfig ($KUBECONFIG). See
// spec/cluster/README.md ("Data plane").
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: schedsim-dataplane podrunner|gateway FLAGS")
		os.Exit(2)
	}
	var rc int
	switch os.Args[1] {
	case "podrunner":
		rc = runPodRunner(os.Args[2:])
	case "gateway":
		rc = runGateway(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "schedsim-dataplane: unknown command %q\n", os.Args[1])
		rc = 2
	}
	os.Exit(rc)
}
