"""A real local control plane (etcd, kube-apiserver, scheduler, controller-manager, kwok) for tests, demos and benchmarks."""
