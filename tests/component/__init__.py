"""Tests of one component with real sockets, threads or processes (a fake master, the
pools, the CLI against nothing), without a whole cluster: seconds, not milliseconds."""
