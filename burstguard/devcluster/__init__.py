"""A real local control plane for tests, demos and benchmarks.

etcd, kube-apiserver, kube-scheduler, kube-controller-manager and kwok as local processes.
"""
