// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Process events: an exec may bring a new file carrying OpenSSL (user space probes it), and an
 * exit lets user space forget the process and flush its connections.
 */
#include "tokentap.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void proc__emit(__u16 kind, __u32 exit_code)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();
	struct tt_proc_event ev = {};

	hdr__fill(&ev.hdr, kind, id, 0);
	ev.ppid = BPF_CORE_READ(task, real_parent, tgid);
	ev.exit_code = exit_code;
	bpf_get_current_comm(ev.comm, sizeof(ev.comm));
	control__emit(&ev, sizeof(ev));
}

/* Too big for the stack next to the verifier's spills: one per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tt_exec_event);
} exec_scratch SEC(".maps");

SEC("tracepoint/sched/sched_process_exec")
int tp_sched_process_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();
	struct tt_exec_event *ev;
	__u32 zero = 0, off;
	long n;

	if ((__u32)(id >> 32) == self_tgid)
		return 0;
	ev = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!ev)
		return 0;
	__builtin_memset(ev, 0, sizeof(*ev));
	hdr__fill(&ev->proc.hdr, TT_EV_EXEC, id, 0);
	ev->proc.ppid = BPF_CORE_READ(task, real_parent, tgid);
	bpf_get_current_comm(ev->proc.comm, sizeof(ev->proc.comm));
	ev->exe_ino = BPF_CORE_READ(task, mm, exe_file, f_inode, i_ino);
	ev->exe_dev = BPF_CORE_READ(task, mm, exe_file, f_inode, i_sb, s_dev);
	off = ctx->__data_loc_filename & 0xffff;
	n = bpf_probe_read_kernel_str(ev->filename, sizeof(ev->filename), (void *)ctx + off);
	ev->filename_len = n > 0 ? (__u32)n - 1 : 0;
	control__emit(ev, sizeof(*ev));
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int tp_sched_process_exit(struct trace_event_raw_sched_process_exit *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	/* Fires per thread; the thread group is gone when its last live thread leaves. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	proc__emit(TT_EV_EXIT, BPF_CORE_READ(task, exit_code));
	return 0;
}
