#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# A container without a container runtime, for tests/e2e/test_containers.py:
#   enter.sh ROOT CGROUP_DIR... -- COMMAND ARGS...
# moves itself into each cgroup directory (a Kubernetes-looking path in cgroup v2 and/or v1),
# then runs COMMAND chroot'ed in ROOT in new mount and pid namespaces. The process that execs
# COMMAND is unshare's child: its pid is 1 inside, a new pid outside.
set -eu
root=$1
shift
while [ "$1" != "--" ]; do
	echo $$ >"$1/cgroup.procs"
	shift
done
shift
exec unshare --mount --pid --fork chroot "$root" "$@"
