// SPDX-License-Identifier: Apache-2.0
/*
 * span/resource.c: the cgroup parser on the /proc/<pid>/cgroup files of each runtime, cgroup
 * driver and cgroup version (hybrid hosts too), its per-cgroup cache on a fake cgroup tree, and
 * the resource of a chroot'ed process (k8s.pod.uid, executable path as seen inside).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tt_test.h"
#include "audit/procinfo.h"
#include "span/builder.h"
#include "span/resource_cache.h"

#define CID "8b9a1f0e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccdde"
#define UID "5f0c1b2a-9d8e-4f7a-b6c5-d4e3f2a1b0c9"
#define UID_ "5f0c1b2a_9d8e_4f7a_b6c5_d4e3f2a1b0c9"

struct cg_case {
	const char *what, *text, *cid, *pod;
};

static const struct cg_case cases[] = {
    {"containerd v2 systemd driver",
     "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
     ".slice/cri-containerd-" CID ".scope\n",
     CID, UID},
    {"containerd v2 guaranteed QoS",
     "0::/kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID ".scope\n", CID, UID},
    {"CRI-O v2 systemd driver",
     "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_ ".slice/crio-" CID
     ".scope\n",
     CID, UID},
    {"containerd v1 cgroupfs driver",
     "12:pids:/kubepods/burstable/pod" UID "/" CID "\n"
     "11:memory:/kubepods/burstable/pod" UID "/" CID "\n"
     "1:name=systemd:/kubepods/burstable/pod" UID "/" CID "\n",
     CID, UID},
    {"containerd v1 systemd driver (cri-containerd: separator)",
     "3:cpu,cpuacct:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
     ".slice:cri-containerd:" CID "\n",
     CID, UID},
    {"containerd v2 cgroupfs driver", "0::/kubepods/besteffort/pod" UID "/" CID "\n", CID, UID},
    {"Docker v2 systemd", "0::/system.slice/docker-" CID ".scope\n", CID, ""},
    {"Docker v1 cgroupfs",
     "13:name=systemd:/docker/" CID "\n12:pids:/docker/" CID "\n0::/system.slice/"
     "containerd.service\n",
     CID, ""},
    {"Podman v2", "0::/machine.slice/libpod-" CID ".scope/container\n", CID, ""},
    {"hybrid: v1 names it, v2 does not",
     "9:name=systemd:/\n8:pids:/kubepods/besteffort/pod" UID "/" CID "\n0::/\n", CID, UID},
    {"hybrid: the v2 line wins over a v1 line naming another container",
     "4:memory:/docker/0000000000000000000000000000000000000000000000000000000000000000\n"
     "0::/kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID ".scope\n",
     CID, UID},
    {"pod cgroup itself (a pause-less sandbox process)",
     "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_ ".slice\n", "", UID},
    {"host process", "0::/user.slice/user-0.slice/session-3.scope\n", "", ""},
    {"host process, hybrid",
     "9:name=systemd:/\n4:memory:/process_api/73b826aa0e93e5d64ccf6fb2f8faaf33\n0::/\n", "", ""},
    {"no kubepods: 'pod' is not a pod uid", "0::/apod" UID "/x\n", "", ""},
    {"uid too short", "0::/kubepods/besteffort/pod5f0c1b2a-9d8e-4f7a-b6c5-d4e3f2a1b0c/x\n", "", ""},
    {"uid in wrong shape", "0::/kubepods/besteffort/pod5f0c1b2a9-d8e-4f7a-b6c5-d4e3f2a1b0c9/\n", "",
     ""},
    {"empty", "", "", ""},
    {"no newline at the end", "0::/system.slice/docker-" CID ".scope", CID, ""},
};

TEST(cgroup_files_of_each_runtime_and_driver)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cgroup_ids ids;
		int got = cgroup__parse(cases[i].text, &ids);

		if (strcmp(ids.container_id, cases[i].cid) || strcmp(ids.pod_uid, cases[i].pod))
			fprintf(stderr, "  case '%s': got cid '%s' pod '%s'\n", cases[i].what,
				ids.container_id, ids.pod_uid);
		CHECK_EQ_STR(ids.container_id, cases[i].cid);
		CHECK_EQ_STR(ids.pod_uid, cases[i].pod);
		CHECK_EQ_INT(got >= 0, cases[i].cid[0] || cases[i].pod[0]);
	}
}

TEST(pod_uid_lowercases_and_restores_dashes)
{
	char out[40];

	CHECK(cgroup__pod_uid("0::/kubepods.slice/kubepods-pod5F0C1B2A_9D8E_4F7A_B6C5_D4E3F2A1B0C9"
			      ".slice\n",
			      out, sizeof(out)));
	CHECK_EQ_STR(out, UID);
	CHECK(!cgroup__pod_uid("0::/kubepods/pod" UID "\n", out, 20)); /* too small a buffer */
}

/* Every prefix of a file is a file too (a read cut short): never more than the whole says. */
TEST(truncated_files_parse_safely)
{
	const char *text = cases[3].text;
	size_t n = strlen(text);

	for (size_t cut = 0; cut <= n; cut++) {
		char *part = strndup(text, cut);
		struct cgroup_ids ids;

		cgroup__parse(part, &ids);
		CHECK(!ids.container_id[0] || !strcmp(ids.container_id, CID));
		CHECK(!ids.pod_uid[0] || !strcmp(ids.pod_uid, UID));
		free(part);
	}
}

static char tmp[] = "/tmp/tt-resource-XXXXXX";

static void put(const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmp, rel);
	f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void mk(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmp, rel);
	mkdir(path, 0755);
}

/* Two processes of one container share a cache entry keyed by the cgroup directory's inode; a
 * process in another cgroup is a miss. */
TEST(cache_keeps_one_answer_per_cgroup_id)
{
	char proc[300], fs[300];
	struct cgroup_cache *c;
	struct cgroup_ids ids;
	uint64_t hits, misses;
	static const char v1[] = "8:pids:/kubepods/besteffort/pod" UID "/" CID "\n0::/\n";

	snprintf(proc, sizeof(proc), "%s/proc", tmp);
	snprintf(fs, sizeof(fs), "%s/cg", tmp);
	mk("proc");
	mk("proc/10");
	mk("proc/11");
	mk("proc/12");
	mk("cg");
	mk("cg/pids");
	mk("cg/pids/kubepods");
	mk("cg/pids/kubepods/besteffort");
	mk("cg/pids/kubepods/besteffort/pod" UID);
	mk("cg/pids/kubepods/besteffort/pod" UID "/" CID);
	mk("cg/unified");
	mk("cg/unified/system.slice");
	mk("cg/unified/system.slice/docker-" CID ".scope");
	put("proc/10/cgroup", v1);
	put("proc/11/cgroup", v1);
	put("proc/12/cgroup", "1:name=systemd:/\n0::/system.slice/docker-" CID ".scope\n");
	c = cgroup_cache__new(fs);
	CHECK_EQ_INT(cgroup_cache__read(c, proc, 10, &ids), 1);
	CHECK_EQ_STR(ids.pod_uid, UID);
	CHECK_EQ_INT(cgroup_cache__read(c, proc, 11, &ids), 1);
	CHECK_EQ_STR(ids.container_id, CID);
	CHECK_EQ_INT(cgroup_cache__read(c, proc, 12, &ids), 1);
	CHECK_EQ_STR(ids.pod_uid, "");
	CHECK_EQ_STR(ids.container_id, CID);
	cgroup_cache__counts(c, &hits, &misses);
	CHECK_EQ_INT(hits, 1);
	CHECK_EQ_INT(misses, 2);
	CHECK_EQ_INT(cgroup_cache__read(c, proc, 99, &ids), -2); /* -ENOENT: no such process */
	cgroup_cache__free(c);
	/* Uncached: the same answer. */
	CHECK_EQ_INT(cgroup__read(proc, 10, &ids), 1);
	CHECK_EQ_STR(ids.pod_uid, UID);
}

static const struct attr *res_attr(const struct resource *r, const char *key)
{
	for (size_t i = 0; i < r->n_attrs; i++)
		if (!strcmp(r->attrs[i].key, key))
			return &r->attrs[i];
	return NULL;
}

/* A chroot'ed process: /proc/<pid>/exe reads with its root in front, which is cut off. */
TEST(resource_of_a_chrooted_kubernetes_process)
{
	struct resource_ctx ctx = {.proc_root = NULL};
	char proc[300], path[400], rootfs[400];
	const struct attr *a;
	struct resource *r;

	snprintf(proc, sizeof(proc), "%s/proc", tmp);
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", tmp);
	mk("proc");
	mk("proc/20");
	mk("rootfs");
	snprintf(path, sizeof(path), "%s/20/exe", proc);
	snprintf(rootfs + strlen(rootfs), sizeof(rootfs) - strlen(rootfs), "/usr/bin/curl");
	CHECK(!symlink(rootfs, path));
	snprintf(path, sizeof(path), "%s/20/root", proc);
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", tmp);
	CHECK(!symlink(rootfs, path));
	put("proc/20/cgroup", cases[0].text);
	ctx.proc_root = proc;
	snprintf(ctx.host_name, sizeof(ctx.host_name), "node-1");
	ctx.cgroups = cgroup_cache__new(tmp);
	r = resource__from_process(&ctx, 20, "curl", NULL);
	CHECK(r != NULL);
	if (!r)
		return;
	a = res_attr(r, "process.executable.path");
	CHECK(a && !strcmp(a->s, "/usr/bin/curl"));
	a = res_attr(r, "process.executable.name");
	CHECK(a && !strcmp(a->s, "curl"));
	a = res_attr(r, "container.id");
	CHECK(a && !strcmp(a->s, CID));
	a = res_attr(r, "k8s.pod.uid");
	CHECK(a && !strcmp(a->s, UID));
	resource__put(r);
	resource_ctx__free(&ctx);
	CHECK(ctx.cgroups == NULL);
}

/* A process /proc no longer has: the kernel's exec facts name the executable. */
TEST(resource_from_exec_facts_when_proc_is_gone)
{
	struct resource_ctx ctx = {0};
	struct stat st;
	char real[PATH_MAX];
	const struct attr *a;
	struct exe_hint hint;
	struct resource *r;

	ctx.proc_root = "/nonexistent-proc";
	snprintf(ctx.host_name, sizeof(ctx.host_name), "node-1");
	CHECK(realpath("/bin/sh", real) != NULL && !stat(real, &st));
	/* The same file as the kernel mapped: resolved as /proc/<pid>/exe would read. */
	hint = (struct exe_hint){"/bin/sh", st.st_dev, st.st_ino};
	r = resource__from_process(&ctx, 31, "sh", &hint);
	a = r ? res_attr(r, "process.executable.path") : NULL;
	CHECK(a && !strcmp(a->s, real));
	if (r)
		resource__put(r);
	/* Another file under that path (a container's): the path as the process gave it. */
	hint.ino = st.st_ino + 1;
	r = resource__from_process(&ctx, 31, "sh", &hint);
	a = r ? res_attr(r, "process.executable.path") : NULL;
	CHECK(a && !strcmp(a->s, "/bin/sh"));
	a = r ? res_attr(r, "service.name") : NULL;
	CHECK(a && !strcmp(a->s, "sh"));
	if (r)
		resource__put(r);
	/* No facts: the comm, and no path. */
	r = resource__from_process(&ctx, 31, "sh", NULL);
	CHECK(r && !res_attr(r, "process.executable.path"));
	if (r)
		resource__put(r);
	resource_ctx__free(&ctx);
}

int main(void)
{
	char cmd[400];
	int rc;

	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(cgroup_files_of_each_runtime_and_driver);
	RUN(pod_uid_lowercases_and_restores_dashes);
	RUN(truncated_files_parse_safely);
	RUN(cache_keeps_one_answer_per_cgroup_id);
	RUN(resource_of_a_chrooted_kubernetes_process);
	RUN(resource_from_exec_facts_when_proc_is_gone);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	rc = system(cmd);
	(void)rc;
	TT_DONE();
}
