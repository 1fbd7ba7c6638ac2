package main

import (
	"os"
	_ "time/tzdata" // for timeZone support in CronJob

	"github.com/spf13/pflag"

	_ "k8s.io/client-go/plugin/pkg/client/auth"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"

	kwokconfig "sigs.k8s.io/kwok/pkg/config"
	kwokcmd "sigs.k8s.io/kwok/pkg/kwok/cmd"
	kwoklog "sigs.k8s.io/kwok/pkg/log"
	kwoksignals "sigs.k8s.io/kwok/pkg/utils/signals"
)

// Each function mirrors the upstream main package of the component. They are
// only ever called once per process (see main.go), so the process-wide signal
// handlers they install do not clash.

func runAPIServer(args []string) int {
	command := apiserverapp.NewAPIServerCommand()
	command.SetArgs(args)
	return cli.Run(command)
}

func runControllerManager(args []string) int {
	command := kcmapp.NewControllerManagerCommand()
	command.SetArgs(args)
	return cli.Run(command)
}

func runScheduler(args []string) int {
	command := schedulerapp.NewSchedulerCommand()
	command.SetArgs(args)
	return cli.Run(command)
}

func runKubectl(args []string) int {
	os.Args = append([]string{"kubectl"}, args...)
	logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) // nolint:errcheck
	command := kubectlcmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		kubectlutil.CheckErr(err)
		return 1
	}
	return 0
}

// runKwok is sigs.k8s.io/kwok/cmd/kwok's main; kwok parses os.Args itself.
func runKwok(args []string) int {
	os.Args = append([]string{"kwok"}, args...)
	// The Kubernetes packages linked into this binary register a non-bool
	// --version (component-base verflag) on pflag.CommandLine at init, and
	// cobra merges pflag.CommandLine into kwok's root command, which then
	// fails on its own bool --version. This process only runs kwok.
	pflag.CommandLine = pflag.NewFlagSet("kwok", pflag.ExitOnError)
	flagset := pflag.NewFlagSet("global", pflag.ContinueOnError)
	flagset.ParseErrorsAllowlist.UnknownFlags = true
	flagset.Usage = func() {}

	ctx := kwoksignals.SetupSignalContext()
	ctx, logger := kwoklog.InitFlags(ctx, flagset)

	ctx, err := kwokconfig.InitFlags(ctx, flagset)
	if err != nil {
		_, _ = os.Stderr.Write([]byte(flagset.FlagUsages()))
		logger.Error("Init config flags", "err", err)
		return 1
	}

	command := kwokcmd.NewCommand(ctx)
	command.PersistentFlags().AddFlagSet(flagset)
	command.SetArgs(args)
	if err := command.ExecuteContext(ctx); err != nil {
		logger.Error("Execute exit", "err", err)
		return 1
	}
	return 0
}
