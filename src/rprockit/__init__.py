"""rprockit: patch, configure, build, deploy and verify i.MX remoteproc/RPMsg kernels."""

__version__ = "0.1.0"
