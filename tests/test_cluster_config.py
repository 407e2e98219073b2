"""cluster.yaml passes Ray's own cluster-launcher schema and has what README's cluster recipe
relies on (a CPU head running mlflow server on PostgreSQL with S3 artifacts, GPU workers on demand
and spot, shared VGS_HOME, the tracking URI set on every node)."""

from pathlib import Path

import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster.yaml"


def test_cluster_yaml_is_valid_for_ray_up():
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = yaml.safe_load(CLUSTER.read_text())
    validate_config(prepare_config(cfg))  # raises jsonschema.ValidationError naming the faulty key
    types = cfg["available_node_types"]
    assert types[cfg["head_node_type"]]["resources"] == {"CPU": 0}  # the head runs drivers, not trials
    gpu_types = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert len(gpu_types) >= 2 and any("InstanceMarketOptions" in t["node_config"] for t in gpu_types)
    assert any("mlflow server" in c for c in cfg["head_setup_commands"])
    assert any("scripts/setup.sh" in c for c in cfg["setup_commands"])
    starts = [c for c in cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2
    # every node: the shared feature store, and the MLflow server's address given explicitly
    assert all("VGS_HOME=/mnt/shared" in c and "MLFLOW_TRACKING_URI=http://" in c for c in starts)
    server = next(c for c in cfg["head_setup_commands"] if "mlflow server" in c)
    assert "--backend-store-uri postgresql://" in server and "--artifacts-destination s3://" in server
    assert any("[server]" in c for c in cfg["setup_commands"])  # psycopg for the PostgreSQL store


def test_cluster_yaml_is_closed_by_default():
    """Nothing on a public address, secrets from files (issue: an open cluster)."""
    text = CLUSTER.read_text()
    cfg = yaml.safe_load(text)
    assert "0.0.0.0" not in text
    sg = cfg["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["IpRanges"][0]["CidrIp"]) for r in sg] == [(22, "YOUR_IP/32")]  # SSH from you only
    starts = [c for c in cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"] if "ray start" in c]
    assert all("RAY_AUTH_MODE=token" in c and "RAY_AUTH_TOKEN_PATH=" in c for c in starts)
    assert "--dashboard-host=127.0.0.1" in starts[0]
    assert all("MLFLOW_TRACKING_PASSWORD=$(" in c for c in starts)  # read from the secrets file on the node
    server = next(c for c in cfg["head_setup_commands"] if "mlflow server" in c)
    assert "--app-name basic-auth" in server and "--host $(hostname -I" in server
    assert "PASSWORD 'vgs'" not in text and "vgs:vgs@" not in text  # no password in the file or a command line
    assert cfg["file_mounts"]["/home/ubuntu/vgs-secrets"] == "./secrets" and "secrets" in cfg["rsync_exclude"]
