// Command kubelet is the upstream kubelet main of k8s.io/kubernetes/cmd/kubelet at the pinned
// version. It is built beside the multi-call `kube` binary rather than inside it, so adding the
// real node never changes the control plane's build inputs (and never rebuilds it).
//
// NewKubeletCommand needs a real context: a nil one panics when the kubelet starts.
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
