"""The Kustomize base: every manifest parses, the probes, buffering rules, placeholders and the
migration Job are what docs/deploying.md says, and the pod's command and environment really
serve the probes (a real `manage.py serve` started the way the kubelet would start it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.deploy.kit import KUBERNETES, kubernetes_documents, manage_py_command, manifest
from tests.processes import ROOT, django_env
from tests.server.live import free_port, running

SERVER_LABELS = {"app.kubernetes.io/name": "cloudops", "app.kubernetes.io/component": "server"}
# The one table of every variable cloudops reads (tests/docs/ checks it against the code).
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()


def server_container() -> dict:
    [container] = manifest("Deployment", "cloudops")["spec"]["template"]["spec"]["containers"]
    return container


def ingress_for(path: str) -> dict:
    found = [
        doc
        for _, doc in kubernetes_documents()
        if doc["kind"] == "Ingress"
        for rule in doc["spec"]["rules"]
        for http_path in rule["http"]["paths"]
        if http_path["path"] == path
    ]
    assert len(found) == 1, path
    return found[0]


def test_every_manifest_parses_and_the_kustomization_lists_them_all() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    kinds = sorted(doc["kind"] for name, doc in kubernetes_documents() if name != "kustomization.yaml")
    assert kinds == sorted(
        ["ConfigMap", "Secret", "PersistentVolumeClaim", "Job", "Deployment", "Service", "Service"]
        + ["PodDisruptionBudget", "Ingress", "Ingress", "Ingress"]
    )


def test_the_probes_ask_live_and_ready_on_the_serving_port() -> None:
    container = server_container()
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    assert container["args"][container["args"].index("--port") + 1] == "8080"
    assert container["livenessProbe"]["httpGet"] == {"path": "/api/cloud/health/live", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/api/cloud/health/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/api/cloud/health/live", "port": "http"}


def test_the_pods_run_serve_and_wait_for_the_migrations() -> None:
    spec = manifest("Deployment", "cloudops")["spec"]["template"]["spec"]
    name, options = manage_py_command(server_container()["command"] + server_container()["args"])
    assert (name, options["host"], options["port"]) == ("serve", "0.0.0.0", 8080)
    [init] = spec["initContainers"]
    name, options = manage_py_command(init["command"])
    assert name == "migrate" and options["check_unapplied"] and not options["interactive"]


def test_the_migration_job_runs_migrate_with_the_servers_settings() -> None:
    job = manifest("Job", "cloudops-migrate")
    [container] = job["spec"]["template"]["spec"]["containers"]
    name, options = manage_py_command(container["command"])
    assert name == "migrate" and not options["check_unapplied"] and not options["interactive"]
    assert container["envFrom"] == server_container()["envFrom"]
    assert container["image"] == server_container()["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def test_the_service_the_pdb_and_the_headless_service_select_the_server_pods() -> None:
    deployment = manifest("Deployment", "cloudops")
    assert deployment["spec"]["selector"]["matchLabels"] == SERVER_LABELS
    assert SERVER_LABELS.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    for kind, name in (("Service", "cloudops"), ("Service", "cloudops-pods")):
        assert manifest(kind, name)["spec"]["selector"] == SERVER_LABELS
        assert manifest(kind, name)["spec"]["ports"][0]["targetPort"] == "http"
    assert manifest("Service", "cloudops-pods")["spec"]["clusterIP"] == "None"
    pdb = manifest("PodDisruptionBudget", "cloudops")
    assert pdb["spec"]["selector"]["matchLabels"] == SERVER_LABELS
    assert pdb["spec"]["maxUnavailable"] < deployment["spec"]["replicas"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_uploads_are_streamed_through_the_ingress() -> None:
    annotations = ingress_for("/api/cloud/storage")["metadata"]["annotations"]
    rule = "nginx.ingress.kubernetes.io/"
    assert annotations[rule + "proxy-request-buffering"] == "off"
    assert annotations[rule + "proxy-buffering"] == "off"
    assert annotations[rule + "proxy-body-size"] == "0"
    assert int(annotations[rule + "proxy-send-timeout"]) >= 300
    assert int(annotations[rule + "proxy-read-timeout"]) >= 300


def test_event_streams_are_never_buffered_by_the_ingress() -> None:
    ingress = ingress_for("/api/events/stream")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    # Longer than several heartbeats (15 s by default).
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 60
    [path] = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["pathType"] == "Exact"


def test_every_ingress_routes_to_the_service_port_for_one_host_with_tls() -> None:
    ingresses = [doc for _, doc in kubernetes_documents() if doc["kind"] == "Ingress"]
    assert {doc["metadata"]["name"] for doc in ingresses} == {"cloudops", "cloudops-storage", "cloudops-events"}
    hosts = set()
    for ingress in ingresses:
        assert ingress["spec"]["ingressClassName"] == "nginx"
        [rule] = ingress["spec"]["rules"]
        hosts.add(rule["host"])
        assert ingress["spec"]["tls"] == [{"hosts": [rule["host"]], "secretName": "cloudops-tls"}]
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"] == {"name": "cloudops", "port": {"name": "http"}}
    assert len(hosts) == 1
    main = ingress_for("/")["metadata"]["annotations"]
    assert main["nginx.ingress.kubernetes.io/proxy-body-size"] == "10m"


def test_the_secret_holds_placeholders_only() -> None:
    secret = manifest("Secret", "cloudops-secrets")
    assert "data" not in secret  # base64 would hide what is in it
    values = secret["stringData"]
    assert {"DATABASE_URL", "SECRET_KEY", "SIMPLETUNER_SERVER_KEY", "SIMPLETUNER_AUDIT_KEY"} <= set(values)
    for key, value in values.items():
        assert "CHANGE_ME" in value, key
        # Nothing but the placeholder where a secret goes: no key, token or password.
        assert re.sub(r"CHANGE_ME|postgres://cloudops:|@postgres:5432/cloudops", "", value) == "", key


def test_every_setting_is_a_variable_cloudops_reads() -> None:
    config = manifest("ConfigMap", "cloudops-config")["data"]
    secret = manifest("Secret", "cloudops-secrets")["stringData"]
    for name in [*config, *secret]:
        assert name.startswith("PYTHON") or f"`{name}`" in CONFIGURATION, name


def test_outputs_are_on_a_shared_volume_under_simpletuner_home() -> None:
    claim = manifest("PersistentVolumeClaim", "cloudops-outputs")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    spec = manifest("Deployment", "cloudops")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in server_container()["volumeMounts"]}
    home = manifest("ConfigMap", "cloudops-config")["data"]["SIMPLETUNER_HOME"]
    assert volumes[mounts[f"{home}/outputs"]]["persistentVolumeClaim"]["claimName"] == "cloudops-outputs"
    assert "emptyDir" in volumes[mounts[home]]
    # The root filesystem is read-only: everything cloudops writes is on a volume.
    assert server_container()["securityContext"]["readOnlyRootFilesystem"] is True
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_resources_are_requested_with_a_memory_limit_and_no_cpu_limit() -> None:
    resources = server_container()["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"memory"}
    assert resources["requests"]["memory"] == "192Mi" and resources["limits"]["memory"] == "512Mi"


# --- The pod, started for real -------------------------------------------------------------------


def kubelet_env(container: dict, *, pod_ip: str, home: Path) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom, then env with $(VAR)
    references expanded, the downward API's pod IP filled in. The database is the test's;
    Redis is left out (one process)."""
    env = {**manifest("ConfigMap", "cloudops-config")["data"], **manifest("Secret", "cloudops-secrets")["stringData"]}
    for var in container["env"]:
        if "valueFrom" in var:
            assert var["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
            env[var["name"]] = pod_ip
        else:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], var["value"])
    env.pop("REDIS_URL")
    env.pop("DATABASE_URL")
    env["SIMPLETUNER_HOME"] = str(home)
    for key in ("SECRET_KEY", "SIMPLETUNER_SERVER_KEY", "SIMPLETUNER_AUDIT_KEY", "SIMPLETUNER_METRICS_TOKEN"):
        env[key] = f"test-{key.lower()}-" + "x" * 40
    return env


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_pod_answers_the_kubelets_probes_by_its_ip(tmp_path: Path) -> None:
    container = server_container()
    pod_ip = "10.244.1.23"
    env = django_env(**kubelet_env(container, pod_ip=pod_ip, home=tmp_path / "data"))
    port = free_port()
    args = [a.replace("0.0.0.0", "127.0.0.1").replace("8080", str(port)) for a in container["args"]]
    argv = [sys.executable if part == "python" else part for part in container["command"]] + args
    log = tmp_path / "pod.log"
    with running(argv, env, port, log, errors_expected=True) as base:
        # The kubelet sends the pod's IP and port as the Host; ALLOWED_HOSTS must accept it.
        host = {"Host": f"{pod_ip}:8080"}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            answer = httpx.get(base + container[probe]["httpGet"]["path"], headers=host, timeout=10)
            assert answer.status_code == 200, (probe, answer.text)
        assert httpx.get(base + "/api/cloud/health/ready", headers=host, timeout=10).json() == {"status": "ready"}
        # Another pod's address is refused: the IP in ALLOWED_HOSTS is what lets the probes in.
        other = httpx.get(base + "/api/cloud/health/live", headers={"Host": "10.244.9.9:8080"}, timeout=10)
        assert other.status_code == 400
    # The refusal is logged as one warning line without a traceback (the ClientErrorRecord filter
    # in cloudops/structured_logging.py); nothing else may have gone wrong.
    lines = log.read_text().splitlines()
    refusals = [line for line in lines if "django.security.DisallowedHost" in line]
    assert len(refusals) == 1 and "10.244.9.9" in refusals[0], refusals
    assert not [line for line in lines if "Traceback" in line or '"status": 500' in line]


def test_kubectl_renders_the_base(tmp_path: Path) -> None:
    # Optional: kubectl is no Debian package (CI may lack it); the parsing above needs nothing.
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the manifests are checked by parsing them above")
    done = subprocess.run([kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rendered = list(yaml.safe_load_all(done.stdout))
    assert len(rendered) == len([d for n, d in kubernetes_documents() if n != "kustomization.yaml"])
    images = {
        c["image"]
        for doc in rendered
        if doc["kind"] in ("Deployment", "Job")
        for c in doc["spec"]["template"]["spec"].get("initContainers", [])
        + doc["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"registry.example.com/cloudops:1.0.0"}
