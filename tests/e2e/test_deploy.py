#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""deploy/ checked: what an operator installs must agree with the code, and work.

Static (no BPF): every YAML file under deploy/ parses; the DaemonSet has hostPID, the
capabilities tokentap keeps (src/audit/privs.c) and no more, probes on the port and path its
--prometheus address serves, mounts for every path its config names; images and versions agree
across the Dockerfile, the manifests, kustomize and the README; every flag and config key is
known to `tokentap --help`; the ConfigMap's config passes `tokentap --check-config`; the
Dockerfile's stages, COPY sources and runtime packages (against the built binary's NEEDED
libraries); the Collector config's pipelines and its copy in the manifests; the Collector RBAC
that k8sattributes needs; `promtool check rules` and `promtool test rules`, with every alert
covered by a firing and a quiet case; the dashboard's variables and panels.

Live (BPF, root): tokentap runs with exactly the DaemonSet's capabilities (capsh) and the
ConfigMap's config (paths moved into a temporary directory, /metrics on a free loopback port);
a real Prometheus (scrape and rule interval 1 s) loads deploy/prometheus/*.rules.yml, with
budgets.rules.yml extended by this run's tenants and team; a Python client makes calls to the
mock provider for two tenants, three priced models and one unpriced, plain and streamed, with
429 errors, twice, a few scrapes apart (increase() needs a baseline). Then every dashboard query (template variables = All, $__rate_interval = 1m,
$__range = 5m) and every rule expression is evaluated through the HTTP API: each must succeed
and return data. An alert expression that is not firing returns nothing by design; for those
the series it compares (every selector in it) are evaluated instead and must have data. The
budget alerts of a tenant and a team given a tiny budget must fire. The capability set without
CAP_SYS_ADMIN either runs or fails with the message the no-sys-admin overlay documents.

What cannot run here (kubectl apply, the Collector, Grafana) is in the README ("Deployment").
Last line printed: "deploy: N passed, N failed".
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_e2e as h  # noqa: E402

try:
    import yaml
except ImportError:
    # Debian's python3-yaml is for /usr/bin/python3; another python3 first on PATH (pyenv)
    # may lack it. Without either, the tests say what to install.
    if os.path.exists("/usr/bin/python3") and sys.executable != "/usr/bin/python3" and \
            not os.environ.get("TOKENTAP_DEPLOY_REEXEC"):
        os.environ["TOKENTAP_DEPLOY_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    yaml = None

REPO = h.REPO
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
PROM = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "tokentap.json"
RUN = uuid.uuid4().hex[:6]
TENANT_OVER, TENANT_UNDER = f"tt-over-{RUN}", f"tt-under-{RUN}"
TEAM = f"tt-team-{RUN}"
UNPRICED = f"tt-unpriced-{RUN}"
RATE_INTERVAL, RANGE = "1m", "5m"
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset", "inf", "nan"}


def need_yaml():
    if yaml is None:
        raise AssertionError("python3-yaml is missing (TOKENTAP_TEST_DEPS=1 deploy/deps.sh)")


def load_all(path):
    need_yaml()
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def manifests():
    """Every Kubernetes object of deploy/kubernetes (overlays apart), by (kind, name)."""
    out = {}
    for p in sorted(K8S.glob("*.yaml")):
        for d in load_all(p):
            if "kind" in d and d["kind"] != "Kustomization":
                out[(d["kind"], d["metadata"]["name"])] = d
    return out


def daemonset():
    return manifests()[("DaemonSet", "tokentap")]


def container(ds, name="tokentap"):
    return next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def config_text():
    return manifests()[("ConfigMap", "tokentap-config")]["data"]["tokentap.conf"]


def config_pairs(text):
    """(key, value) of a tokentap config file, as src/config.c reads it."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, _, v = line.partition("=")
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] == '"':
            v = v[1:-1]
        out.append((k.strip().replace("_", "-"), v))
    return out


def config_value(key):
    vals = [v for k, v in config_pairs(config_text()) if k == key]
    return vals[-1] if vals else None


def known_flags():
    out = subprocess.run([h.TOKENTAP, "--help"], capture_output=True, text=True, timeout=10)
    return set(re.findall(r"--([a-z0-9-]+)", out.stdout))


def tokentap_version():
    out = subprocess.run([h.TOKENTAP, "--version"], capture_output=True, text=True, timeout=10)
    return out.stdout.split()[-1]


def dockerfile():
    """[(instruction, argument)] with continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def run_caps():
    """The capabilities tokentap keeps after attaching (privs.c RUN_SET), as Kubernetes names."""
    src = (REPO / "src" / "audit" / "privs.c").read_text()
    m = re.search(r"#define RUN_SET \((.*)\)", src)
    return {c for c in re.findall(r"BIT\(CAP_([A-Z_]+)\)", m.group(1))}


def rule_files():
    return sorted(PROM.glob("*.rules.yml"))


def all_rules(paths):
    for p in paths:
        for g in load_all(p)[0]["groups"]:
            for r in g["rules"]:
                yield r


def dashboard():
    return json.loads(DASHBOARD.read_text())


def panel_queries(dash):
    for p in dash["panels"]:
        for t in p.get("targets", []):
            yield p["title"], t["expr"]


def selectors(expr):
    """The series selectors of a PromQL expression (metric name with its matchers)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: m.group(0).replace("{", "").replace("}", ""), expr)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    out = []
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?(\s*\()?", s):
        if m.group(3) or m.group(1).lower() in KEYWORDS:
            continue  # a function call or an operator
        out.append(m.group(1) + (m.group(2) or ""))
    return out


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


# ---- static checks -------------------------------------------------------------------------

class TestManifests(unittest.TestCase):
    def test_every_yaml_file_parses(self):
        files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
        self.assertGreaterEqual(len(files), 10)
        for p in files:
            docs = load_all(p)
            self.assertTrue(docs, p)
            for d in docs:
                self.assertIsInstance(d, dict, p)
        for d in manifests().values():
            self.assertIn("apiVersion", d)
            if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding",
                                 "PriorityClass"):
                self.assertEqual(d["metadata"].get("namespace"), "tokentap", d["metadata"])

    def test_kustomization_lists_every_manifest(self):
        k = load_all(K8S / "kustomization.yaml")[0]
        listed = set(k["resources"])
        for p in K8S.glob("*.yaml"):
            if p.name in ("kustomization.yaml", "servicemonitor.yaml"):
                continue  # servicemonitor.yaml needs the Prometheus Operator's CRDs
            self.assertIn(p.name, listed)
        for r in listed:
            self.assertTrue((K8S / r).is_file(), r)

    def test_daemonset_runs_on_every_node_with_host_pid(self):
        ds = daemonset()
        spec = ds["spec"]["template"]["spec"]
        self.assertIs(spec["hostPID"], True)
        self.assertNotIn("hostNetwork", spec)
        self.assertEqual(spec["tolerations"], [{"operator": "Exists"}])
        self.assertEqual(ds["spec"]["updateStrategy"]["type"], "RollingUpdate")
        self.assertEqual(ds["spec"]["selector"]["matchLabels"].items() -
                         ds["spec"]["template"]["metadata"]["labels"].items(), set())
        self.assertGreaterEqual(spec["terminationGracePeriodSeconds"], 30)
        pc = manifests()[("PriorityClass", spec["priorityClassName"])]
        self.assertEqual(pc["value"], 1000000000)

    def test_service_account_has_no_token_and_no_rbac(self):
        m = manifests()
        self.assertIs(m[("ServiceAccount", "tokentap")]["automountServiceAccountToken"], False)
        spec = daemonset()["spec"]["template"]["spec"]
        self.assertEqual(spec["serviceAccountName"], "tokentap")
        self.assertIs(spec["automountServiceAccountToken"], False)
        for (kind, _), d in m.items():
            if kind in ("RoleBinding", "ClusterRoleBinding"):
                for s in d["subjects"]:
                    self.assertNotEqual(s["name"], "tokentap", f"{kind} binds tokentap")

    def test_capabilities_are_those_tokentap_keeps(self):
        c = container(daemonset())
        sc = c["securityContext"]
        self.assertIs(sc["privileged"], False)
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        want = run_caps() | {"SYS_ADMIN"}
        self.assertEqual(want, {"BPF", "PERFMON", "SYS_PTRACE", "DAC_READ_SEARCH", "SYS_ADMIN"})
        self.assertEqual(set(sc["capabilities"]["add"]), want)
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertEqual(sc["runAsUser"], 0)

    def overlay_container(self, name):
        k = load_all(K8S / "overlays" / name / "kustomization.yaml")[0]
        self.assertEqual(k["resources"], ["../.."])
        (patch,) = k["patches"]
        self.assertEqual(patch["target"], {"kind": "DaemonSet", "name": "tokentap"})
        p = yaml.safe_load(patch["patch"])
        self.assertEqual((p["kind"], p["metadata"]["name"], p["metadata"]["namespace"]),
                         ("DaemonSet", "tokentap", "tokentap"))
        (c,) = p["spec"]["template"]["spec"]["containers"]
        self.assertEqual(c["name"], container(daemonset())["name"])
        return c["securityContext"]

    def test_overlays_patch_the_agent(self):
        self.assertIs(self.overlay_container("privileged")["privileged"], True)
        sc = self.overlay_container("no-sys-admin")
        self.assertEqual(set(sc["capabilities"]["add"]), run_caps())
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])

    def test_probes_and_scrape_target_match_the_prometheus_address(self):
        ds = daemonset()
        c = container(ds)
        host, _, port = config_value("prometheus").rpartition(":")
        self.assertIn(host, ("0.0.0.0", "[::]"), "probes and Prometheus reach the pod IP")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports["metrics"], int(port))
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = c[probe]["httpGet"]
            self.assertEqual(get["path"], "/healthz", probe)
            self.assertEqual(ports.get(get["port"], get["port"]), int(port), probe)
        ann = ds["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual((ann["prometheus.io/port"], ann["prometheus.io/path"]), (port, "/metrics"))
        svc = manifests()[("Service", "tokentap")]
        self.assertEqual(svc["spec"]["clusterIP"], "None")
        (sp,) = svc["spec"]["ports"]
        self.assertEqual((sp["port"], sp["targetPort"]), (int(port), "metrics"))
        sm = load_all(K8S / "servicemonitor.yaml")[0]
        self.assertEqual(sm["spec"]["endpoints"][0]["port"], sp["name"])
        self.assertEqual(sm["spec"]["endpoints"][0]["path"], "/metrics")

    def test_resources_are_bounded(self):
        spec = daemonset()["spec"]["template"]["spec"]
        for c in spec["containers"] + spec["initContainers"]:
            self.assertIn("memory", c["resources"]["requests"], c["name"])
            self.assertIn("memory", c["resources"]["limits"], c["name"])

    def test_every_path_in_the_config_is_mounted(self):
        c = container(daemonset())
        vols = {v["name"]: v for v in daemonset()["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        for m in c["volumeMounts"]:
            self.assertIn(m["name"], vols)
        args = c["args"]
        conf = Path(args[args.index("--config") + 1])
        self.assertEqual(mounts[str(conf.parent)]["name"], "config")
        self.assertIn(conf.name, manifests()[("ConfigMap", "tokentap-config")]["data"])
        for key, writable in (("fingerprint-key", False), ("control-socket", True)):
            d = str(Path(config_value(key)).parent)
            self.assertIn(d, mounts, key)
            self.assertEqual(not mounts[d].get("readOnly", False), writable, key)
        # Read-only root: the start-up uprobe check writes in /tmp; tracepoints need tracefs.
        self.assertIn("/tmp", mounts)
        self.assertEqual(vols["tracefs"]["hostPath"]["path"], "/sys/kernel/tracing")
        self.assertEqual(vols["cgroup"]["hostPath"]["path"], "/sys/fs/cgroup")
        self.assertIs(vols["fingerprint"]["secret"]["optional"], True)
        # The default --state-dir is written to: a host directory, kept across restarts.
        self.assertEqual(vols[mounts["/var/lib/tokentap"]["name"]]["hostPath"]["path"],
                         "/var/lib/tokentap")
        self.assertFalse(mounts["/var/lib/tokentap"].get("readOnly", False))

    def test_flags_and_config_keys_are_known(self):
        flags = known_flags()
        self.assertIn("check-config", flags)
        spec = daemonset()["spec"]["template"]["spec"]
        for c in spec["containers"] + spec["initContainers"]:
            for a in c.get("args", []):
                if a.startswith("--"):
                    self.assertIn(a[2:].split("=")[0], flags, c["name"])
        for key, _ in config_pairs(config_text()):
            self.assertIn(key, flags)
        for a in re.findall(r'"(--[a-z-]+)"', (DEPLOY / "Dockerfile").read_text()):
            self.assertIn(a[2:], flags)

    def test_configmap_config_passes_check_config(self):
        work = h.Workspace.get().dir / "check-config"
        work.mkdir(exist_ok=True)
        good = work / "tokentap.conf"
        good.write_text(live_config(work, 9464))
        good.chmod(0o600)
        out = subprocess.run([h.TOKENTAP, "--check-config", "--config", good],
                             capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("tokentap: configuration OK", out.stdout)
        self.assertFalse((work / "fingerprint.key").exists(), "--check-config created a file")
        bad = work / "bad.conf"
        bad.write_text(good.read_text() + "tenant-header = x-api-key\n")
        bad.chmod(0o600)
        out = subprocess.run([h.TOKENTAP, "--check-config", "--config", bad],
                             capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode, 2)
        self.assertIn("carries credentials", out.stderr)

    def test_one_image_and_version_everywhere(self):
        version = tokentap_version()
        image = f"ghcr.io/tokentap/tokentap:{version}"
        spec = daemonset()["spec"]["template"]["spec"]
        for c in spec["containers"] + spec["initContainers"]:
            self.assertEqual(c["image"], image, c["name"])
        k = load_all(K8S / "kustomization.yaml")[0]
        self.assertEqual(k["images"], [{"name": image.split(":")[0], "newTag": version}])
        df = (DEPLOY / "Dockerfile").read_text()
        self.assertIn(f"docker build -f deploy/Dockerfile -t {image} .", df)
        self.assertIn(f'org.opencontainers.image.version="{version}"', df)
        readme = (REPO / "README.md").read_text()
        self.assertTrue(f"docker build -f deploy/Dockerfile -t {image} ." in readme,
                        "README: no docker build command with this image")
        ports = [p for i, a in dockerfile() if i == "EXPOSE" for p in a.split()]
        self.assertEqual(ports, [config_value("prometheus").rpartition(":")[2]])


class TestDockerfile(unittest.TestCase):
    def test_stages_from_debian_slim(self):
        froms = [a.split() for i, a in dockerfile() if i == "FROM"]
        self.assertEqual(froms, [["debian:12-slim", "AS", "build"],
                                 ["debian:12-slim", "AS", "runtime"]])

    def test_copy_sources_exist_and_build_output_is_copied(self):
        ins = dockerfile()
        stage_of, stage = [], None
        for i, a in ins:
            if i == "FROM":
                stage = a.split()[-1]
            stage_of.append(stage)
        made = None
        for (i, a), st in zip(ins, stage_of):
            if i == "RUN" and "make" in a:
                m = re.search(r"BUILD=(\S+) (\S+)", a)
                made = m.group(2)
                self.assertEqual(Path(m.group(2)).parent, Path(m.group(1)))
            if i != "COPY":
                continue
            args = a.split()
            if args[0].startswith("--from="):
                self.assertEqual(args[0], "--from=build")
                self.assertEqual(args[1], made)
                self.assertEqual(st, "runtime")
                continue
            for src in args[:-1]:
                self.assertTrue((REPO / src).exists(), f"COPY {src}: no such file in the repo")
        # Everything the Makefile builds from is copied into the build stage.
        copied = {a.split()[0] for (i, a), st in zip(ins, stage_of)
                  if i == "COPY" and st == "build"}
        for need in ("Makefile", "include", "vmlinux", "bpf", "src", "deploy/pricing.json",
                     "deploy/deps.sh"):
            self.assertIn(need, copied)

    def test_runtime_paths_match_the_manifests(self):
        ins = dict((i, a) for i, a in dockerfile())
        self.assertEqual(json.loads(ins["ENTRYPOINT"]), ["/usr/bin/tokentap"])
        self.assertEqual(json.loads(ins["CMD"]), container(daemonset())["args"])
        copies = [a.split() for i, a in dockerfile() if i == "COPY"]
        self.assertIn(["deploy/pricing.json", config_value("pricing")], copies)
        self.assertIn(["--from=build", "/out/tokentap", "/usr/bin/tokentap"], copies)

    def test_runtime_packages_cover_the_binary(self):
        """Each NEEDED library of the built tokentap, by Debian package, is installed in the
        runtime stage (transitive ones come with apt's dependencies)."""
        run = [a for i, a in dockerfile() if i == "RUN" and "apt-get install" in a][-1]
        pkgs = set(run.split("--no-install-recommends", 1)[1].split("&&")[0].split())
        needed = re.findall(r"\(NEEDED\).*\[(.+)\]",
                            subprocess.run(["readelf", "-d", h.TOKENTAP], capture_output=True,
                                           text=True).stdout)
        self.assertTrue(needed)
        ldd = dict(re.findall(r"^\s*(\S+) => (\S+)", subprocess.run(
            ["ldd", h.TOKENTAP], capture_output=True, text=True).stdout, re.M))
        base = {"libc6", "libgcc-s1", "libstdc++6"}  # in debian:12-slim (apt needs them)
        for lib in needed:
            path = ldd[lib]
            owners = None
            for cand in (path, os.path.realpath(path), "/usr" + path):
                out = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
                if out.returncode == 0:
                    owners = {o.split(":")[0] for o in out.stdout.split(": ")[0].split(", ")}
                    break
            self.assertIsNotNone(owners, f"{lib}: no Debian package owns {path}")
            self.assertTrue(owners & (pkgs | base),
                            f"{lib} ({owners}) missing from the runtime stage")


class TestCollector(unittest.TestCase):
    def test_pipelines(self):
        cfg = load_all(DEPLOY / "otel-collector.yaml")[0]
        self.assertIn("otlp", cfg["receivers"])
        self.assertEqual(cfg["receivers"]["otlp"]["protocols"]["http"]["endpoint"],
                         "0.0.0.0:4318")
        pipes = cfg["service"]["pipelines"]
        self.assertEqual(set(pipes), {"traces", "metrics"})
        for name, p in pipes.items():
            self.assertEqual(p["processors"], ["memory_limiter", "k8sattributes", "batch"], name)
            self.assertEqual(set(p["exporters"]), {"otlp", "debug"}, name)
            self.assertEqual(p["receivers"], ["otlp"], name)
            for kind in ("receivers", "processors", "exporters"):
                for comp in p[kind]:
                    self.assertIn(comp, cfg[kind], f"{name}: {comp} is not defined")
        for ext in cfg["service"].get("extensions", []):
            self.assertIn(ext, cfg["extensions"])

    def test_k8sattributes(self):
        k = load_all(DEPLOY / "otel-collector.yaml")[0]["processors"]["k8sattributes"]
        assoc = [s["sources"] for s in k["pod_association"]]
        self.assertEqual(assoc, [[{"from": "resource_attribute", "name": "k8s.pod.uid"}],
                                 [{"from": "resource_attribute", "name": "container.id"}]])
        for attr in ("k8s.pod.name", "k8s.namespace.name", "k8s.deployment.name",
                     "k8s.node.name"):
            self.assertIn(attr, k["extract"]["metadata"])

    def test_manifest_carries_the_same_config_and_rbac(self):
        m = manifests()
        self.assertEqual(m[("ConfigMap", "otel-collector-config")]["data"]["config.yaml"],
                         (DEPLOY / "otel-collector.yaml").read_text())
        role = m[("ClusterRole", "tokentap-otel-collector")]
        got = {(g, r): set(rule["verbs"]) for rule in role["rules"]
               for g in rule["apiGroups"] for r in rule["resources"]}
        for need in (("", "pods"), ("", "namespaces"), ("apps", "replicasets")):
            self.assertEqual(got.get(need), {"get", "list", "watch"}, need)
        b = m[("ClusterRoleBinding", "tokentap-otel-collector")]
        self.assertEqual(b["roleRef"]["name"], role["metadata"]["name"])
        self.assertEqual(b["subjects"], [{"kind": "ServiceAccount", "name": "otel-collector",
                                          "namespace": "tokentap"}])
        dep = m[("Deployment", "otel-collector")]["spec"]["template"]["spec"]
        self.assertEqual(dep["serviceAccountName"], "otel-collector")
        self.assertTrue(dep["containers"][0]["image"].startswith(
            "otel/opentelemetry-collector-contrib:"))

    def test_tokentap_sends_to_the_collector_service(self):
        u = urllib.parse.urlsplit(config_value("otlp-endpoint"))
        name, ns = u.hostname.split(".")[:2]
        svc = manifests()[("Service", name)]
        self.assertEqual(svc["metadata"]["namespace"], ns)
        sp = next(p for p in svc["spec"]["ports"] if p["port"] == u.port)
        dep = manifests()[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]
        cports = {p["name"]: p["containerPort"] for p in dep["ports"]}
        self.assertEqual(cports[sp["targetPort"]], u.port)
        self.assertEqual(u.scheme, "http")


def check_series(tc, expr, what):
    """Every series expr reads is one tokentap emits (src/export/metrics.c), a recording rule
    of deploy/prometheus, or up: a typo in a name fails here, without BPF."""
    emitted = set(re.findall(r'"((?:gen_ai_client|tokentap)_[a-z_]+)"',
                             (REPO / "src" / "export" / "metrics.c").read_text()))
    emitted |= {"tokentap_metrics_overflow_total", "up"}
    recorded = {r["record"] for r in all_rules(rule_files()) if "record" in r}
    for sel in selectors(expr):
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", sel).group(0)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        tc.assertTrue(name in recorded or name in emitted or base in emitted,
                      f"{what}: unknown series {name}")


class TestRules(unittest.TestCase):
    def promtool(self, *args):
        if not shutil.which("promtool"):
            raise AssertionError("promtool is missing (Debian package prometheus)")
        return subprocess.run(["promtool", *map(str, args)], capture_output=True, text=True,
                              timeout=120)

    def test_promtool_check_rules(self):
        out = self.promtool("check", "rules", *rule_files())
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_promtool_test_rules(self):
        out = self.promtool("test", "rules", *sorted((PROM / "tests").glob("*.test.yml")))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_every_alert_has_a_firing_and_a_quiet_case(self):
        alerts = {r["alert"] for r in all_rules(rule_files()) if "alert" in r}
        self.assertGreaterEqual(len(alerts), 15)
        fired, quiet = set(), set()
        for p in (PROM / "tests").glob("*.test.yml"):
            doc = load_all(p)[0]
            for f in doc["rule_files"]:
                self.assertTrue((p.parent / f).resolve().is_file(), f)
            for t in doc["tests"]:
                for a in t.get("alert_rule_test", []):
                    (fired if a.get("exp_alerts") else quiet).add(a["alertname"])
        self.assertEqual(alerts - fired, set(), "alerts never tested firing")
        self.assertEqual(alerts - quiet, set(), "alerts never tested quiet")

    def test_rules_use_series_tokentap_emits(self):
        for r in all_rules(rule_files()):
            check_series(self, r["expr"], r.get("record") or r.get("alert"))


class TestDashboard(unittest.TestCase):
    def test_variables(self):
        d = dashboard()
        self.assertGreaterEqual(d["schemaVersion"], 36)
        v = {x["name"]: x for x in d["templating"]["list"]}
        self.assertEqual(v["datasource"]["type"], "datasource")
        self.assertEqual(v["datasource"]["query"], "prometheus")
        for name in ("provider", "model", "tenant"):
            self.assertEqual(v[name]["type"], "query")
            self.assertTrue(v[name]["includeAll"])
            self.assertEqual(v[name]["allValue"], ".*")

    def test_panels(self):
        d = dashboard()
        titles = " | ".join(p["title"] for p in d["panels"])
        for want in ("team", "tenant", "model", "provider", "Tokens per second", "p50 / p95",
                     "Time to first chunk", "Error rate", "Budget", "Events captured",
                     "Parse errors", "Spans exported", "Attached files"):
            self.assertIn(want, titles)
        for title, expr in panel_queries(d):
            check_series(self, expr, title)
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        for p in d["panels"]:
            if p["type"] != "row":
                self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])
                self.assertTrue(p["targets"], p["title"])


# ---- live: tokentap, a real Prometheus, every query ----------------------------------------

def live_config(work, port, otlp_port=None):
    """The ConfigMap's config with its node paths moved into work and /metrics on loopback. The
    Collector is a closed local port: failed exports are counted (health panels, alerts)."""
    moves = {
        "prometheus": f"127.0.0.1:{port}",
        "pricing": str(DEPLOY / "pricing.json"),
        "fingerprint-key": str(work / "fingerprint.key"),
        "control-socket": str(work / "tokentap.sock"),
        "otlp-endpoint": f"http://127.0.0.1:{otlp_port or h.free_port()}",
    }
    lines = []
    for key, value in config_pairs(config_text()):
        lines.append(f"{key} = {moves.get(key, value)}")
    return "\n".join(lines) + "\n"


def budgets_for_test(path, services):
    """budgets.rules.yml plus this run's entries: a tenant over budget, one far under it, and a
    team (the clients' services) over budget."""
    doc = load_all(PROM / "budgets.rules.yml")[0]
    rules = doc["groups"][0]["rules"]
    rules += [
        {"record": "tokentap_tenant:tokentap_budget_usd:monthly", "expr": "vector(1e-9)",
         "labels": {"tokentap_tenant": TENANT_OVER}},
        {"record": "tokentap_tenant:tokentap_budget_usd:monthly", "expr": "vector(1e9)",
         "labels": {"tokentap_tenant": TENANT_UNDER}},
        {"record": "team:tokentap_budget_usd:monthly", "expr": "vector(1e-9)",
         "labels": {"team": TEAM}},
    ]
    rules += [{"record": "tokentap:service_team:info", "expr": "vector(1)",
               "labels": {"service_name": s, "team": TEAM}} for s in services]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def start_with_caps(caps, args, work, name, env=None):
    """tokentap under capsh, with only caps (Kubernetes names) left in its bounding set."""
    keep = {"cap_" + c.lower() for c in caps}
    drop = [c for c in h.bounding_set() if c not in keep]
    return h.start_under_capsh(drop, args, work, name, env)


def stop(proc, timeout=20):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def workload_calls():
    calls = []
    for tenant in (TENANT_OVER, TENANT_UNDER):
        hdr = {"x-tenant-id": tenant}
        calls += [h.call("openai", "gpt-4o-mini", "mini", headers=hdr),
                  h.call("openai", "gpt-4o-mini", "mini-s", stream=True, headers=hdr),
                  h.call("openai", "gpt-4o", "4o-s", stream=True, headers=hdr),
                  h.call("anthropic", "claude-haiku-4-5", "haiku", headers=hdr),
                  h.call("anthropic", "claude-haiku-4-5", "haiku-s", stream=True, headers=hdr),
                  h.call("openai", UNPRICED, "unpriced", headers=hdr),
                  h.call("openai", "gpt-4o-mini", "e429", headers=dict(hdr, **{
                      "x-mock-status": "429"})),
                  h.call("anthropic", "claude-haiku-4-5", "e429a", headers=dict(hdr, **{
                      "x-mock-status": "429"}))]
    return calls


def workload():
    """The same calls twice, from one process on one keep-alive connection, with a 4 s call
    between the rounds: a counter's first scrape is its baseline (Prometheus cannot tell how
    much of it is new), so increase() sees only the second round. One process: its
    service.name, a label of every series, is the same in both rounds."""
    pause = h.call("openai", UNPRICED, "pause", delay=4000, headers={"x-tenant-id": TENANT_OVER})
    return h.run_python(workload_calls() + [pause] + workload_calls(), mode="keepalive")


class TestLive(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        need_yaml()
        h.require_bpf()
        for tool in ("prometheus", "capsh"):
            if not shutil.which(tool):
                raise AssertionError(f"{tool} is missing (TOKENTAP_TEST_DEPS=1 deploy/deps.sh)")
        ws = h.Workspace.get()
        cls.mock = ws.mock
        cls.work = ws.dir / cls.__name__
        cls.work.mkdir()
        cls.prom = cls.tt = None
        try:
            cls.start()
        except BaseException:
            h.kill_all_but_mock(cls.mock)
            raise

    @classmethod
    def start(cls):
        cls.metrics_port = h.free_port()
        conf = cls.work / "tokentap.conf"
        conf.write_text(live_config(cls.work, cls.metrics_port))
        conf.chmod(0o600)
        caps = container(daemonset())["securityContext"]["capabilities"]["add"]
        cls.tt, cls.tt_out, cls.tt_err = start_with_caps(
            caps, ["--config", conf], cls.work, "tokentap",
            env={"OTEL_RESOURCE_ATTRIBUTES": "k8s.node.name=test-node"})
        if b"tokentap: ready" not in cls.tt_err.read_bytes():
            raise AssertionError(f"tokentap with the DaemonSet's capabilities did not start:\n"
                                 f"{h.tail(cls.tt_err)}")
        # service.name: the executable's name, or its comm when tokentap could not read it
        services = sorted({os.path.basename(os.path.realpath(sys.executable)),
                           os.path.basename(sys.executable)})
        budgets = cls.work / "budgets.rules.yml"
        budgets_for_test(budgets, services)
        cls.prom = h.Prometheus(cls.work, cls.metrics_port,
                              [PROM / "tokentap.rules.yml", budgets])
        cls.wait_for_first_scrape()
        cls.calls = workload()
        cls.wait_for_rules()

    @classmethod
    def wait_for_first_scrape(cls):
        """Prometheus hands its scrape manager new targets every 5 s, so /-/ready comes before
        the first scrape: a workload started then would be all baseline for increase()."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if cls.prom.query('up{job="tokentap"} == 1'):
                return
            time.sleep(0.2)
        raise AssertionError("prometheus did not scrape tokentap within 30 s")

    @classmethod
    def wait_for_rules(cls):
        """Until the last links of the rule chains have data (scrape, then two evaluations)."""
        # Every group runs on its own schedule, late on a loaded host: wait for all of them.
        records = {r["record"] for r in all_rules([PROM / "tokentap.rules.yml"])
                   if "record" in r}
        want = sorted(records) + [
            f'tokentap_cost_unpriced_calls_total{{gen_ai_request_model="{UNPRICED}"}}',
            'ALERTS{alertname="TenantBudgetExceeded",alertstate="firing"}']
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if all(cls.prom.query(q) for q in want):
                return
            time.sleep(0.5)
        missing = [q for q in want if not cls.prom.query(q)]
        raise AssertionError(f"no data after 40 s for {missing}; tokentap stderr:\n"
                             f"{h.tail(cls.tt_err)}")

    @classmethod
    def tearDownClass(cls):
        if cls.prom:
            cls.prom.stop()
        if cls.tt:
            stop(cls.tt)

    def test_healthz_and_metrics_on_the_configured_address(self):
        self.assertEqual(http_get(f"http://127.0.0.1:{self.metrics_port}/healthz")[0], 200)
        self.assertEqual(self.prom.query('up{job="tokentap"}')[0]["value"][1], "1")
        want = {TENANT_OVER: 17.0, TENANT_UNDER: 16.0}
        deadline = time.monotonic() + 20  # the last calls' spans may still be on their way
        while True:
            got = self.prom.query(f'sum by (tokentap_tenant) (gen_ai_client_operation_duration_'
                                  f'seconds_count{{tokentap_tenant=~"tt-.*-{RUN}"}})')
            got = {r["metric"]["tokentap_tenant"]: float(r["value"][1]) for r in got}
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(got, want)

    def test_every_dashboard_query_has_data(self):
        empty = []
        for title, expr in panel_queries(dashboard()):
            q = re.sub(r"\$(provider|model|tenant|instance)\b", ".*", expr)
            q = q.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", RANGE)
            self.assertNotIn("$", q, title)
            if not self.prom.query(q):
                empty.append(f"{title}: {q}")
        self.assertEqual(empty, [], "dashboard queries without data")

    def test_every_template_variable_has_values(self):
        now = time.time()
        for v in dashboard()["templating"]["list"]:
            if v["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.+), (\w+)\)", v["query"]["query"])
            self.assertIsNotNone(m, v["name"])
            match = re.sub(r"\$\w+", ".*", m.group(1))
            got = self.prom.api(f"/api/v1/label/{m.group(2)}/values", **{
                "match[]": match, "start": now - 300, "end": now})
            self.assertTrue(got, f"${v['name']}: no values")

    def test_every_rule_expression_has_data(self):
        """Recording rules and firing alerts: the expression itself. Quiet alerts: every series
        they compare (printed as evaluated instead)."""
        empty, inner = [], []
        for r in all_rules([PROM / "tokentap.rules.yml", self.work / "budgets.rules.yml"]):
            name = r.get("record") or r.get("alert")
            if self.prom.query(r["expr"]):
                continue
            if "record" in r:
                empty.append(f"{name}: {r['expr']}")
                continue
            for sel in selectors(r["expr"]):
                inner.append(f"{name}: {sel}")
                if not self.prom.query(sel):
                    empty.append(f"{name} (quiet; its series): {sel}")
        print("\ndeploy: quiet alerts, their series evaluated instead:\n  " +
              "\n  ".join(inner), file=sys.stderr)
        self.assertEqual(empty, [], "rule expressions without data")

    def test_budget_alerts_fire_for_a_tiny_budget_only(self):
        alerts = [a for a in self.prom.api("/api/v1/alerts")["alerts"]
                  if a["state"] == "firing"]
        fired = {(a["labels"]["alertname"], a["labels"].get("tokentap_tenant") or
                  a["labels"].get("team")) for a in alerts}
        self.assertIn(("TenantBudgetExceeded", TENANT_OVER), fired)
        self.assertIn(("TeamBudgetExceeded", TEAM), fired)
        self.assertNotIn(("TenantBudgetExceeded", TENANT_UNDER), fired)
        self.assertNotIn(("TenantBudget80Percent", TENANT_UNDER), fired)
        ratio = self.prom.query(f'tokentap_tenant:tokentap_budget:ratio{{tokentap_tenant='
                                f'"{TENANT_UNDER}"}}')
        self.assertLess(float(ratio[0]["value"][1]), 1e-6)

    def test_spans_carry_the_node_name(self):
        pids = {c["pid"] for c in self.calls}
        deadline = time.monotonic() + 20
        while True:
            spans = [json.loads(line) for line in self.tt_out.read_text().splitlines()
                     if line.startswith("{") and line.endswith("}")]
            mine = [s for s in spans if s["resource"].get("process.pid") in pids]
            if len(mine) >= len(self.calls) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(len(mine), len(self.calls))
        for s in mine:
            self.assertEqual(s["resource"].get("k8s.node.name"), "test-node")
        self.assertNotIn(h.API_KEY, self.tt_out.read_text())

    def test_z_tokentap_exits_0_on_sigint(self):
        """Last (tests run in name order): the agent stops cleanly, sanitizers included,
        within the grace period the DaemonSet gives it before SIGKILL."""
        grace = daemonset()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        stop(self.tt, timeout=grace)
        self.assertEqual(self.tt.returncode, 0, h.tail(self.tt_err))

    def test_capability_set_without_sys_admin(self):
        """The no-sys-admin overlay's set: ready, or the refusal its comment documents."""
        sc_add = load_all(K8S / "overlays" / "no-sys-admin" / "kustomization.yaml")[0]
        caps = yaml.safe_load(sc_add["patches"][0]["patch"])["spec"]["template"]["spec"][
            "containers"][0]["securityContext"]["capabilities"]["add"]
        proc, _, err = start_with_caps(caps, ["--format", "json", "--control-socket", ""],
                                       self.work, "no-sys-admin")
        stop(proc)
        text = err.read_text(errors="replace")
        if "tokentap: ready" not in text:
            self.assertIn("this kernel refuses to create uprobes", text)
            self.assertIn("add cap_sys_admin", text)
            self.assertIn("tokentap: this kernel refuses to create uprobes",
                          (K8S / "overlays" / "no-sys-admin" / "kustomization.yaml").read_text())


def main():
    h.run_suite("deploy", __name__)


if __name__ == "__main__":
    main()
