"""deploy/k8s: every manifest parses, matches its schema, and agrees with the code and the others.

Core objects are checked offline against the Kubernetes OpenAPI schemas that kubernetes-validate
ships (strict: an unknown or misspelled field fails). The ScaledObject is checked against the
parts of KEDA's CRD (`config/crd/bases/keda.sh_scaledobjects.yaml`, KEDA 2.20) it uses, written
out below, plus the metrics-api scaler's own rules (`pkg/scalers/metrics_api_scaler.go`).
"""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from worker.metrics import BACKLOG_METRIC, HEALTH_PATH, METRICS_PATH
from worker.settings import ENV_NAMES, SECRET_FIELDS, read_settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
NAMESPACE: Final = "clinia-ingest"
KUBERNETES_VERSIONS: Final = ("1.29", "1.37")
"""The oldest and newest minor versions the manifests are validated against."""
IMAGE_USER: Final = 10001
"""`USER` in deploy/Dockerfile."""
NOT_APPLIED: Final = {"secret.example.yaml", "flower.yaml"}
"""Manifests kept out of the kustomization on purpose (placeholders; an optional component)."""
FOREIGN_ENV: Final = {
    "REMAP_SIGTERM": "read by Celery: SIGTERM starts the soft shutdown",
    "POD_IP": "the downward API, for the exporter's listening address",
    "FLOWER_BASIC_AUTH": "read by Flower, which has no *_FILE form",
}
"""Environment variables the manifests set that are not ingest settings, and why."""
INT32: Final = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}

_HPA_RULES: Final = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "policies": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["periodSeconds", "type", "value"],
                "properties": {"periodSeconds": INT32, "type": {"type": "string"}, "value": INT32},
            },
        },
        "selectPolicy": {"type": "string"},
        "stabilizationWindowSeconds": INT32,
    },
}
SCALED_OBJECT_SCHEMA: Final = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string", "minLength": 1},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": {**INT32, "minimum": 1},
                "cooldownPeriod": {**INT32, "minimum": 0},
                "initialCooldownPeriod": {**INT32, "minimum": 0},
                "idleReplicaCount": {**INT32, "minimum": 0},
                "minReplicaCount": {**INT32, "minimum": 0},
                "maxReplicaCount": {**INT32, "minimum": 1},
                "fallback": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["failureThreshold", "replicas"],
                    "properties": {
                        "behavior": {
                            "enum": [
                                "static",
                                "currentReplicas",
                                "currentReplicasIfHigher",
                                "currentReplicasIfLower",
                                "scalingModifiers",
                            ]
                        },
                        "failureThreshold": {**INT32, "minimum": 0},
                        "replicas": {**INT32, "minimum": 0},
                    },
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "behavior": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {"scaleDown": _HPA_RULES, "scaleUp": _HPA_RULES},
                                },
                            },
                        },
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["metadata", "type"],
                        "properties": {
                            "type": {"type": "string", "minLength": 1},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            # Every value is a string in the CRD: `targetValue: 2000` is refused.
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}
METRICS_API_METADATA: Final = {
    "type": "object",
    "required": ["url", "valueLocation", "targetValue"],
    "properties": {
        "format": {"enum": ["prometheus", "json", "xml", "yaml"]},
        "targetValue": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
        "activationTargetValue": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
    },
}
"""What `metrics_api_scaler.go` parses: url, valueLocation and targetValue required, numbers."""


def _load() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is not None:
                found.append((path.name, document))
    return found


DOCUMENTS: Final = _load()
OBJECTS: Final = [(name, doc) for name, doc in DOCUMENTS if doc.get("kind") != "Kustomization"]
CORE: Final = [(name, doc) for name, doc in OBJECTS if not doc["apiVersion"].startswith("keda.sh/")]


def _one(kind: str, name: str) -> dict[str, Any]:
    [found] = [d for _, d in OBJECTS if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _deployments() -> Iterator[dict[str, Any]]:
    return (doc for _, doc in OBJECTS if doc["kind"] == "Deployment")


def _containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for deployment in _deployments():
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            yield pod, container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def _container(deployment: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = _one("Deployment", deployment)["spec"]["template"]["spec"][
        "containers"
    ]
    [container] = containers
    return container


def _config() -> dict[str, str]:
    data: dict[str, str] = _one("ConfigMap", "clinia-ingest")["data"]
    return data


def _scaled_object() -> dict[str, Any]:
    return _one("ScaledObject", "clinia-ingest-worker")


def _id(item: tuple[str, dict[str, Any]]) -> str:
    return f"{item[0]}:{item[1]['kind']}/{item[1]['metadata']['name']}"


# -- parsing and schemas ------------------------------------------------------------------------


def test_every_manifest_parses_and_lives_in_the_service_namespace() -> None:
    assert {name for name, _ in DOCUMENTS} >= {
        "namespace.yaml", "configmap.yaml", "secret.example.yaml", "worker.yaml", "metrics.yaml",
        "scaledobject.yaml", "flower.yaml", "kustomization.yaml",
    }  # fmt: skip
    for name, doc in OBJECTS:
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, name


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("item", CORE, ids=[_id(item) for item in CORE])
def test_core_objects_match_the_kubernetes_schema(
    item: tuple[str, dict[str, Any]], version: str
) -> None:
    kubernetes_validate.validate(item[1], version, strict=True)


def test_kubernetes_schema_refuses_a_misspelled_field() -> None:
    broken = copy.deepcopy(_one("Deployment", "clinia-ingest-worker"))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")

    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_scaled_object_matches_the_keda_crd() -> None:
    jsonschema.validate(_scaled_object(), SCALED_OBJECT_SCHEMA)
    for trigger in _scaled_object()["spec"]["triggers"]:
        if trigger["type"] == "metrics-api":
            jsonschema.validate(trigger["metadata"], METRICS_API_METADATA)


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        (("triggers", 0, "metadata", "targetValue"), 2000, "is not of type 'string'"),
        (("minReplicas",), 1, "Additional properties"),
        (("fallback", "replicas"), -1, "less than the minimum"),
    ],
    ids=["number-in-metadata", "misspelled-key", "negative-fallback"],
)
def test_keda_schema_refuses_a_broken_scaled_object(
    path: tuple[Any, ...], value: Any, complaint: str
) -> None:
    broken = copy.deepcopy(_scaled_object())
    target = broken["spec"]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value

    with pytest.raises(jsonschema.ValidationError, match=complaint):
        jsonschema.validate(broken, SCALED_OBJECT_SCHEMA)


# -- cross-references ---------------------------------------------------------------------------


def test_kustomization_applies_every_manifest_but_the_example_secret_and_flower() -> None:
    [kustomization] = [doc for _, doc in DOCUMENTS if doc.get("kind") == "Kustomization"]

    assert kustomization["namespace"] == NAMESPACE
    applied = set(kustomization["resources"])
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert applied == on_disk - NOT_APPLIED


def test_scaled_object_targets_the_worker_deployment() -> None:
    spec = _scaled_object()["spec"]
    target = spec["scaleTargetRef"]

    assert target.get("kind", "Deployment") == "Deployment"
    assert target.get("apiVersion", "apps/v1") == "apps/v1"
    worker = _one("Deployment", target["name"])
    assert worker["spec"]["template"]["spec"]["containers"][0]["args"][0] == "worker"
    assert "replicas" not in worker["spec"], "KEDA owns the replica count"
    # At least one worker: ingest.publish messages from Celery clients are not in the backlog.
    assert 1 <= spec["minReplicaCount"] <= spec["fallback"]["replicas"] <= spec["maxReplicaCount"]


def test_scaled_object_reads_the_backlog_gauge_through_the_exporter_service() -> None:
    [trigger] = _scaled_object()["spec"]["triggers"]
    metadata = trigger["metadata"]
    url = urlsplit(metadata["url"])
    service = _one("Service", "clinia-ingest-metrics")
    [port] = service["spec"]["ports"]

    assert trigger["type"] == "metrics-api"
    assert trigger["metricType"] == "AverageValue"  # KEDA's fallback needs it
    assert (metadata["format"], metadata["valueLocation"]) == ("prometheus", BACKLOG_METRIC)
    # KEDA calls from its own namespace: the Service's full name, its port, the metrics path
    assert url.hostname == f"{service['metadata']['name']}.{NAMESPACE}.svc"
    assert url.port == port["port"]
    assert url.path == METRICS_PATH


def test_service_selects_the_exporter_pods_and_its_named_port() -> None:
    service = _one("Service", "clinia-ingest-metrics")
    selector = service["spec"]["selector"]
    [port] = service["spec"]["ports"]
    selected = [
        d["metadata"]["name"]
        for d in _deployments()
        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    container = _container("clinia-ingest-metrics")
    named = {p["name"]: p["containerPort"] for p in container["ports"]}

    assert selected == ["clinia-ingest-metrics"]
    assert port["targetPort"] in named
    args = container["args"]
    assert args[0] == "metrics"
    assert int(args[args.index("--port") + 1]) == named[port["targetPort"]]


def test_exporter_listens_on_the_pod_address_and_probes_health_not_redis() -> None:
    container = _container("clinia-ingest-metrics")
    args = container["args"]

    assert args[args.index("--host") + 1] == "$(POD_IP)"
    assert _env(container)["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == HEALTH_PATH


def test_every_environment_variable_is_a_setting_or_a_documented_foreign_one() -> None:
    settings = set(ENV_NAMES.values())
    files = {f"{ENV_NAMES[field]}_FILE" for field in SECRET_FIELDS}
    secrets = {ENV_NAMES[field] for field in SECRET_FIELDS}

    assert set(_config()) <= settings - secrets
    for _, container in _containers():
        for name, item in _env(container).items():
            assert name in settings | files | set(FOREIGN_ENV), name
            assert name not in secrets, f"{name}: secrets come as files (*_FILE)"
            if name in FOREIGN_ENV and "valueFrom" in item:
                assert set(item["valueFrom"]) <= {"fieldRef", "secretKeyRef"}


def test_config_map_values_are_valid_settings() -> None:
    settings = read_settings(_config())

    assert settings.worker_concurrency is not None  # not the node's CPU count


def test_secret_files_and_keys_exist_in_the_mounted_secret() -> None:
    example = _one("Secret", "clinia-ingest")
    for pod, container in _containers():
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])}
        for name, item in _env(container).items():
            if name.endswith("_FILE"):
                path = Path(item["value"])
                volume = mounts[str(path.parent)]
                assert volume["secret"]["secretName"] == example["metadata"]["name"], name
                paths = {i["path"]: i["key"] for i in volume["secret"]["items"]}
                assert paths[path.name] in example["stringData"], name
            elif "secretKeyRef" in item.get("valueFrom", {}):
                reference = item["valueFrom"]["secretKeyRef"]
                assert reference["name"] == example["metadata"]["name"]
                assert reference["key"] in example["stringData"]


def test_worker_grace_period_exceeds_the_soft_shutdown_it_starts_on_sigterm() -> None:
    pod = _one("Deployment", "clinia-ingest-worker")["spec"]["template"]["spec"]
    container = _container("clinia-ingest-worker")

    assert _env(container)["REMAP_SIGTERM"]["value"] == "SIGQUIT"
    soft_shutdown_s = read_settings(_config()).soft_shutdown_timeout_s
    assert soft_shutdown_s + 5 <= pod["terminationGracePeriodSeconds"]


def test_worker_liveness_pings_its_own_main_process_and_forgives_a_long_wait() -> None:
    container = _container("clinia-ingest-worker")
    probe = container["livenessProbe"]
    command = shlex.split(probe["exec"]["command"][-1])

    assert "httpGet" not in probe
    assert command[1:] == [
        "celery", "-A", "worker", "inspect", "ping", "--destination", "celery@${HOSTNAME}",
        "--timeout", "10",
    ]  # fmt: skip
    assert probe["timeoutSeconds"] > 10
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 300


def test_every_pod_runs_restricted_as_the_image_user() -> None:
    for pod, container in _containers():
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == IMAGE_USER
        assert context["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        own = container["securityContext"]
        assert own["allowPrivilegeEscalation"] is False
        assert own["readOnlyRootFilesystem"] is True
        assert own["capabilities"]["drop"] == ["ALL"]
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert f"USER {IMAGE_USER}" in dockerfile


def test_every_container_has_requests_and_a_memory_limit() -> None:
    for _, container in _containers():
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
        assert "memory" in resources["limits"], container["name"]


def test_every_container_runs_the_one_image() -> None:
    images = {container["image"] for _, container in _containers()}

    assert len(images) == 1


def test_hosts_are_service_names_or_loopback_only() -> None:
    text = "\n".join(path.read_text(encoding="utf-8") for path in K8S.glob("*"))
    hosts = {urlsplit(url).hostname for url in re.findall(r"[a-z]+://[^\s\"']+", text)}

    assert hosts
    for host in hosts:
        assert host is not None
        assert host == "127.0.0.1" or "." not in host or host.endswith(f".{NAMESPACE}.svc"), host
    assert "0.0.0.0" not in text
