"""deploy/: the compose file (its Triton image is out of reach) and the Kubernetes manifests (no cluster)
do not run here; tools/container_check.sh builds and runs the CPU image. So at least every `wildpose`
command line in them must be one our CLI accepts, the pieces must connect, and the image must not
take in what git ignores."""

from pathlib import Path

import pytest
import yaml

from wildpose.tools import cli

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def wildpose_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every container that runs our image."""
    commands = []
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("wildpose"):
            commands.append((f"compose {name}", [str(a) for a in service["command"]]))
    for document in yaml.safe_load_all((DEPLOY / "k8s" / "pipelines.yaml").read_text()):
        if document["kind"] != "Deployment":
            continue
        spec = document["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container["image"].startswith("wildpose"):
                commands.append((f"k8s {document['metadata']['name']}/{container['name']}",
                                 [str(a) for a in container["args"]]))
    return commands


@pytest.mark.parametrize("where, argv", wildpose_commands(), ids=lambda value: value if isinstance(value, str) else "")
def test_every_deployed_wildpose_command_line_parses(where, argv, capsys):
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `wildpose {' '.join(argv)}` is rejected: {capsys.readouterr().err.strip()}")
    assert args.verb == argv[0]


def test_the_compose_pipelines_infer_on_its_triton_service_and_the_proxy_forwards_both():
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert "tritonserver --model-repository=/models" in " ".join(services["triton"]["command"])
    assert services["models"]["command"][:3] == ["export", "--triton-repo", "/models"]
    for site in ("site-a", "site-b"):
        command = services[site]["command"]
        assert command[command.index("--engine") + 1] == "triton://triton:8001"
    proxy = services["proxy"]["command"]
    assert [proxy[i + 1] for i, a in enumerate(proxy) if a == "--upstream"] == ["tcp://site-a:5555",
                                                                                 "tcp://site-b:5555"]


def test_the_container_build_copies_nothing_that_git_ignores():
    """`COPY . /opt/wildpose` once took a tested checkout's .venv-serve (1.4 GB) and runs/ into the image.
    A .gitignore line `x/` matches at any depth (`**/x` to Docker), `/x/` only at the root (`x`)."""
    root = DEPLOY.parent
    ignored_by_git = [line.strip() for line in (root / ".gitignore").read_text().splitlines()
                      if line.strip() and not line.startswith("#")]
    ignored_by_docker = {line.strip() for line in (root / ".dockerignore").read_text().splitlines()
                         if line.strip() and not line.startswith("#")}
    for pattern in ignored_by_git:
        name = pattern.strip("/")
        expected = name if pattern.startswith("/") else f"**/{name}"
        assert expected in ignored_by_docker, f".gitignore has {pattern!r}: .dockerignore needs {expected!r}"
    assert ".git" in ignored_by_docker
