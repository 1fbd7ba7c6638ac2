package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// crdFile is one file of a CRD set: a path (glob) under the CRD dir and,
// for multi-document files that hold more CRDs than the set wants, the names
// of the CRDs to take (empty: every CRD in the file).
type crdFile struct {
	glob  string
	names []string
}

// crdSets maps the names accepted by --crds / "ctl install-crds" to files
// under the CRD dir. The default CRD dir is the Go module cache, so the paths
// are <module>@<version>/<path in the module>; spec/cluster/thirdparty fetches
// those modules at the versions (and hashes) pinned in thirdparty.sum.
var crdSets = map[string][]crdFile{
	"gateway": {
		{glob: "sigs.k8s.io/gateway-api@v1.4.0/config/crd/standard/gateway.networking.k8s.io_gatewayclasses.yaml"},
		{glob: "sigs.k8s.io/gateway-api@v1.4.0/config/crd/standard/gateway.networking.k8s.io_gateways.yaml"},
		{glob: "sigs.k8s.io/gateway-api@v1.4.0/config/crd/standard/gateway.networking.k8s.io_grpcroutes.yaml"},
		{glob: "sigs.k8s.io/gateway-api@v1.4.0/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"},
		{glob: "sigs.k8s.io/gateway-api@v1.4.0/config/crd/standard/gateway.networking.k8s.io_referencegrants.yaml"},
	},
	// v1 pool: v1.6.0 (endpointPickerRef optional, appProtocol)
	"inference-v1": {{glob: "sigs.k8s.io/gateway-api-inference-extension@v1.6.0/config/crd/bases/inference.networking.k8s.io_inferencepools.yaml"}},
	// the legacy v1alpha2 pool: last shipped in v1.4.0
	"inference-v1alpha2": {{glob: "sigs.k8s.io/gateway-api-inference-extension@v1.4.0/config/crd/bases/inference.networking.x-k8s.io_inferencepools.yaml"}},
	// InferenceObjective: last shipped in v1.5.0 (EPPs built on GAIE <= 1.5 watch it)
	"inference-objective": {{glob: "sigs.k8s.io/gateway-api-inference-extension@v1.5.0/config/crd/bases/inference.networking.x-k8s.io_inferenceobjectives.yaml"}},
	// Istio's CRDs are one multi-document file in istio.io/api
	"istio": {{glob: "istio.io/api@v1.28.1/kubernetes/customresourcedefinitions.gen.yaml",
		names: []string{"destinationrules.networking.istio.io", "envoyfilters.networking.istio.io"}}},
}

func crdSetNames() []string {
	names := make([]string, 0, len(crdSets))
	for n := range crdSets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func parseCRDList(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "none":
		return nil, nil
	case "all":
		return crdSetNames(), nil
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if n == "all" {
			return crdSetNames(), nil
		}
		if _, ok := crdSets[n]; !ok {
			return nil, fmt.Errorf("unknown CRD set %q (known: %s, all, none)", n, strings.Join(crdSetNames(), ","))
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// installCRDs creates (or updates) the CRDs of the given sets and waits until
// each is Established.
func (l *launcher) installCRDs(ctx context.Context, sets []string) error {
	if l.crdsDir == "" {
		return fmt.Errorf("no third-party CRD dir (--crds-dir / SCHEDSIM_THIRDPARTY_CRDS)")
	}
	cs, err := apiextclient.NewForConfig(l.adminCfg)
	if err != nil {
		return err
	}
	var names []string
	for _, set := range sets {
		for _, cf := range crdSets[set] {
			files, err := filepath.Glob(filepath.Join(l.crdsDir, cf.glob))
			if err != nil || len(files) == 0 {
				return fmt.Errorf("CRD set %s: no file matches %s (spec/cluster/thirdparty fetches the pinned modules)",
					set, filepath.Join(l.crdsDir, cf.glob))
			}
			for _, f := range files {
				n, err := applyCRDFile(ctx, cs, f, cf.names)
				if err != nil {
					return fmt.Errorf("CRD set %s: %s: %w", set, f, err)
				}
				names = append(names, n...)
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range names {
		for {
			crd, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, n, metav1.GetOptions{})
			if err == nil && crdEstablished(crd) {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("CRD %s not Established (err=%v)", n, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	l.logf("installed CRDs %s (%d CRDs)", strings.Join(sets, ","), len(names))
	return nil
}

func crdEstablished(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// applyCRDFile creates or updates the CRDs of file (every one, or those named
// in only) and returns their names; a name of only that the file lacks is an
// error.
func applyCRDFile(ctx context.Context, cs *apiextclient.Clientset, file string, only []string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 64*1024)
	var names []string
	for {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := dec.Decode(crd); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		if crd.Name == "" || (len(only) > 0 && !slices.Contains(only, crd.Name)) {
			continue
		}
		client := cs.ApiextensionsV1().CustomResourceDefinitions()
		for attempt := 0; ; attempt++ {
			_, err = client.Create(ctx, crd, metav1.CreateOptions{FieldManager: "schedsim-cluster"})
			if apierrors.IsAlreadyExists(err) {
				var cur *apiextensionsv1.CustomResourceDefinition
				cur, err = client.Get(ctx, crd.Name, metav1.GetOptions{})
				if err == nil {
					crd.ResourceVersion = cur.ResourceVersion
					_, err = client.Update(ctx, crd, metav1.UpdateOptions{FieldManager: "schedsim-cluster"})
				}
			}
			if err == nil || attempt >= 5 || !(apierrors.IsConflict(err) || apierrors.IsServerTimeout(err)) {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", crd.Name, err)
		}
		names = append(names, crd.Name)
	}
	for _, n := range only {
		if !slices.Contains(names, n) {
			return nil, fmt.Errorf("CRD %s not found in the file", n)
		}
	}
	return names, nil
}
